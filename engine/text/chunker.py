"""Diary chunker: long entries -> sentence-aware chunks for batched synthesis, with stable ids.

A chunk is one or more whole sentences of one paragraph. Sentences shorter than `min_chars` are joined
with the next; sentences longer than `max_chars` are cut at commas, then at spaces, never inside a
number, a quotation or an English word. Because a chunk closes as soon as it is long enough, an edit
only changes the chunks around the edited sentence: the others keep their text and so their id
(a hash of the normalised text and the settings), and their cached audio can be reused.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass

from engine.errors import BadText

MAX_TEXT_CHARS = 50_000  # the service default (shared.settings.max_text_chars); callers may pass theirs
HARD_MAX_CHARS = 510  # upstream's longest segment: past this even a quotation is cut
_ID_SCHEME = 1  # bump when the chunking rules change, so old cached audio is not reused by mistake

_TERMINAL = frozenset("。！？!?…；;.")
_SECONDARY = frozenset("，,、：:—～~")
_CLOSERS = frozenset("”’」』》）)]】\"'")
_QUOTE_PAIRS = {"“": "”", "‘": "’", "「": "」", "『": "』", "《": "》", "（": "）", "(": ")"}
_SYMMETRIC_QUOTES = frozenset("\"")
_ATOMS = re.compile(r"\d+(?:[.,:/\-]\d+)*%?|[A-Za-z]+(?:['’\-][A-Za-z]+)*")
_SPEAKABLE = re.compile(r"[^\W_]")


@dataclass(frozen=True)
class Chunk:
    id: str  # stable: hash of the normalised text and the chunking settings
    text: str
    index: int  # position in the diary, 0-based


def check_text(text: str, max_text_chars: int = MAX_TEXT_CHARS) -> str:
    """Reject text that cannot be rendered with a message for the writer; return it unchanged otherwise."""
    if not isinstance(text, str):
        raise BadText(f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise BadText("the text is empty")
    if len(text) > max_text_chars:
        raise BadText(f"the text has {len(text)} characters; the limit is {max_text_chars}")
    if not _SPEAKABLE.search(text):
        raise BadText("the text has nothing to read aloud (only punctuation, symbols or emoji)")
    return text


def normalise_for_id(text: str) -> str:
    """NFKC, whitespace collapsed, and kept only between Latin letters or digits (where it is heard)."""
    text = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()
    return re.sub(r"(?<![A-Za-z0-9]) | (?![A-Za-z0-9])", "", text)


def chunk_id(text: str, language: str, max_chars: int, min_chars: int) -> str:
    key = json.dumps([_ID_SCHEME, language, max_chars, min_chars, normalise_for_id(text)], ensure_ascii=False)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def _protected(text: str, max_quote: int) -> list[bool]:
    """inside[i] is True when a cut between text[i-1] and text[i] would split a number, word or quote."""
    inside = [False] * (len(text) + 1)
    for m in _ATOMS.finditer(text):
        for i in range(m.start() + 1, m.end()):
            inside[i] = True
    stack: list[tuple[str, int]] = []
    for i, ch in enumerate(text):
        if stack and ch == stack[-1][0]:
            _, start = stack.pop()
            if i - start < max_quote:
                for j in range(start + 1, i + 1):
                    inside[j] = True
        elif ch in _QUOTE_PAIRS:
            stack.append((_QUOTE_PAIRS[ch], i))
        elif ch in _SYMMETRIC_QUOTES:
            stack.append((ch, i))
    return inside


def _cut_after(text: str, marks: frozenset[str], inside: list[bool]) -> list[str]:
    """Cut after each mark (and the closing quotes that follow it) where no protected span is open."""
    pieces, start, i = [], 0, 0
    while i < len(text):
        if text[i] in marks:
            end = i + 1
            while end < len(text) and (text[end] in marks or text[end] in _CLOSERS):
                end += 1
            if not inside[end] or end == len(text):
                pieces.append(text[start:end])
                start = end
            i = end
        else:
            i += 1
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def _pack(pieces: list[str], max_chars: int) -> list[str]:
    out: list[str] = []
    for piece in pieces:
        if out and len(out[-1]) + len(piece) <= max_chars:
            out[-1] += piece
        else:
            out.append(piece)
    return out


def _split_long(sentence: str, max_chars: int, inside: list[bool]) -> list[str]:
    """A sentence over max_chars: cut at commas, then spaces, then any unprotected position."""
    if len(sentence) <= max_chars:
        return [sentence]
    out: list[str] = []
    for part in _pack(_cut_after(sentence, _SECONDARY, inside), max_chars):
        if len(part) <= max_chars:
            out.append(part)
            continue
        offset = sentence.find(part)
        sub_inside = inside[offset : offset + len(part) + 1]
        words = _pack(_cut_after(part, frozenset(" "), sub_inside), max_chars)
        for word_run in words:
            out.extend(_hard_split(word_run, max_chars) if len(word_run) > HARD_MAX_CHARS else [word_run])
    return out


def _hard_split(text: str, max_chars: int) -> list[str]:
    inside = _protected(text, max_quote=0)  # numbers and words only
    pieces, start = [], 0
    while len(text) - start > max_chars:
        cut = start + max_chars
        while cut > start + 1 and inside[cut]:
            cut -= 1
        if cut == start + 1:  # one number or word longer than max_chars: cut it anyway
            cut = start + max_chars
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces


def _sentences(paragraph: str, max_chars: int) -> list[str]:
    inside = _protected(paragraph, max_quote=HARD_MAX_CHARS)
    out: list[str] = []
    pos = 0
    for sentence in _cut_after(paragraph, _TERMINAL, inside):
        out.extend(_split_long(sentence, max_chars, inside[pos : pos + len(sentence) + 1]))
        pos += len(sentence)
    return [s for s in out if s.strip()]


def _merge_short(sentences: list[str], min_chars: int, max_chars: int) -> list[str]:
    chunks: list[str] = []
    current = ""
    for sentence in sentences:
        if current and len(current) + len(sentence) > max_chars:
            chunks.append(current)
            current = ""
        current += sentence
        if len(current.strip()) >= min_chars:
            chunks.append(current)
            current = ""
    if current:
        if chunks and len(chunks[-1]) + len(current) <= max_chars:
            chunks[-1] += current
        else:
            chunks.append(current)
    return chunks


def chunk_diary(
    text: str,
    language: str = "zh",
    max_chars: int = 80,
    min_chars: int = 12,
    max_text_chars: int = MAX_TEXT_CHARS,
) -> list[Chunk]:
    """Cut a diary entry into chunks of whole sentences (about min_chars..max_chars characters).

    Paragraphs (lines) never share a chunk; pieces with nothing to read (emoji, symbols) are dropped.
    Raises BadText for empty, unspeakable or over-long text.
    """
    if min_chars < 1 or max_chars < min_chars:
        raise ValueError(f"need 1 <= min_chars <= max_chars, got {min_chars}, {max_chars}")
    check_text(text, max_text_chars)
    texts: list[str] = []
    for paragraph in re.split(r"\s*\n\s*", text.replace("\r\n", "\n").replace("\r", "\n")):
        paragraph = re.sub(r"[ \t\u3000]+", " ", paragraph).strip()
        if paragraph:
            texts += _merge_short(_sentences(paragraph, max_chars), min_chars, max_chars)
    texts = [t.strip() for t in texts if _SPEAKABLE.search(t)]
    return [Chunk(chunk_id(t, language, max_chars, min_chars), t, i) for i, t in enumerate(texts)]
