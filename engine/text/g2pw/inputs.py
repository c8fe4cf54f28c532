"""Model inputs of one converter call: tokens per model text, per-query rows, padding and run groups.

G2PW.md sections 3.2-3.6: every query gets token rows (the whole model text up to 510 tokens, else a
510-token window centred on the query), all rows of the call are padded to the longest one, and with
the sentence dedup the queries sharing a model text run together on their first member's token rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MAX_TOKENS = 510  # BERT's 512 minus [CLS] and [SEP]
_WORD = re.compile(r" +|[a-zA-Z0-9]+|.", re.DOTALL)


@dataclass
class Tokenized:
    """A model text as tokens: which token each character belongs to and which characters each covers."""

    tokens: list[str]
    char_to_token: list[int | None]
    token_spans: list[tuple[int, int]]


@dataclass
class Query:
    text: str  # the (cropped) model text
    index: int  # the query character's index in text


def tokenize(text: str, tokenize_word: Callable[[str], list[str]]) -> Tokenized:
    """Spaces get no token, an ASCII letter/digit run is one word, any other character a word of its own."""
    tokens: list[str] = []
    spans: list[tuple[int, int]] = []
    char_to_token: list[int | None] = [None] * len(text)
    words = 0
    for match in _WORD.finditer(text):
        word, start = match.group(), match.start()
        if word.startswith(" "):
            continue
        # characters no token covers keep their word's index, as upstream leaves them
        char_to_token[start : start + len(word)] = [words] * len(word)
        words += 1
        pieces = tokenize_word(word)
        if not pieces or pieces == ["[UNK]"]:
            pieces, lengths = ["[UNK]"], [len(word)]
        else:
            lengths = [len(p[2:] if p.startswith("##") else p) for p in pieces]
        for piece, length in zip(pieces, lengths, strict=True):
            spans.append((start, start + length))
            for pos in range(start, min(start + length, len(text))):
                char_to_token[pos] = len(tokens)
            tokens.append(piece)
            start += length
    return Tokenized(tokens, char_to_token, spans)


def window(tok: Tokenized, index: int) -> tuple[list[str], int]:
    """The 510-token window around the query (shifted to stay inside) and the query's token in it."""
    centre = tok.char_to_token[index]
    assert centre is not None  # a query is an ideograph, never a space
    start = centre - MAX_TOKENS // 2
    start = max(0, min(start, len(tok.tokens) - MAX_TOKENS))
    return tok.tokens[start : start + MAX_TOKENS], centre - start


@dataclass
class Rows:
    """Per query: token ids (unpadded), position id; the caller adds masks and char ids."""

    ids: list[list[int]]
    positions: list[int]


def build_rows(queries: list[Query], tokenize_word: Callable[[str], list[str]],
               to_ids: Callable[[list[str]], list[int]]) -> Rows:  # fmt: skip
    cache: dict[str, tuple[Tokenized, list[int] | None]] = {}
    rows = Rows([], [])
    for query in queries:
        text = query.text.lower()
        if text not in cache:
            tok = tokenize(text, tokenize_word)
            short = len(tok.tokens) <= MAX_TOKENS
            cache[text] = (tok, to_ids(["[CLS]", *tok.tokens, "[SEP]"]) if short else None)
        tok, shared_ids = cache[text]
        if shared_ids is not None:
            rows.ids.append(shared_ids)
            rows.positions.append(tok.char_to_token[query.index] + 1)  # +1: [CLS]
        else:
            tokens, position = window(tok, query.index)
            rows.ids.append(to_ids(["[CLS]", *tokens, "[SEP]"]))
            rows.positions.append(position + 1)
    return rows


def padded(ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask), right-padded with 0 to the longest row."""
    width = max(len(row) for row in ids)
    input_ids = np.zeros((len(ids), width), np.int64)
    mask = np.zeros((len(ids), width), np.int64)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return input_ids, mask


def run_groups(texts: list[str], dedup: bool) -> list[tuple[list[int], bool]]:
    """(query indices, whether they share the first one's token rows) per ONNX run.

    One run for all queries, unless the dedup is on and some model text is shared: then one run per
    distinct text (in order of first appearance), on batch-1 token rows when it has several queries.
    """
    if not dedup or len(texts) <= 1:
        return [(list(range(len(texts))), False)]
    groups: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        groups.setdefault(text, []).append(i)
    if all(len(group) == 1 for group in groups.values()):
        return [(list(range(len(texts))), False)]
    return [(group, len(group) > 1) for group in groups.values()]
