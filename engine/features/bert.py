"""chinese-roberta-wwm-ext-large word features, one 1024-d vector per phone (MODEL.md 4.2).

Upstream runs ``BertForMaskedLM`` with ``output_hidden_states=True`` once per segment and keeps only
``hidden_states[-3]``. That output does not depend on the last two layers or the 21128-way MLM head,
so we load the encoder alone, cut to the layers that feed ``hidden_states[-3]``, and run many
segments per call, packed side by side with a block-diagonal attention mask. The numbers are the
same; the work is ~10 % less per token, and a call reads the 1.2 GB of weights once for all segments
instead of once per segment.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import jieba
import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertModel, BertTokenizerFast

from engine.errors import BadText, ModelsMissing
from engine.features.loading import quiet_transformers, require_folder
from engine.text import PhoneSegment, expand_word_features

BERT_DIM = 1024  # the T2S model's bert_proj expects this width
UNUSED_TOP_LAYERS = 2  # hidden_states[-3] is the output of layer L-2 of L
MAX_TOKENS = 510  # 512 positions minus [CLS] and [SEP]


class BertFeatures:
    def __init__(self, tokenizer: BertTokenizerFast, model: BertModel) -> None:
        self.tokenizer = tokenizer
        self.model = model.eval()

    @classmethod
    def load(
        cls, folder: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> BertFeatures:
        folder = require_folder(folder, "config.json", "vocab.txt", what="BERT (chinese-roberta-wwm-ext-large)")
        config = BertConfig.from_pretrained(folder, local_files_only=True)
        if config.num_hidden_layers < UNUSED_TOP_LAYERS:
            raise ModelsMissing(f"BERT in {folder} has {config.num_hidden_layers} layers; at least 2 are needed")
        config.num_hidden_layers -= UNUSED_TOP_LAYERS
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model, info = BertModel.from_pretrained(
                folder,
                config=config,
                add_pooling_layer=False,
                local_files_only=True,
                output_loading_info=True,
                torch_dtype=dtype,
                attn_implementation="sdpa",
            )
        if info["missing_keys"] or info["mismatched_keys"]:  # the unused layers and MLM head are expected extras
            raise ModelsMissing(
                f"BERT weights in {folder} do not fit its config: missing {info['missing_keys'][:5]}, "
                f"mismatched {info['mismatched_keys'][:5]}"
            )
        if model.config.hidden_size != BERT_DIM:
            raise ModelsMissing(f"BERT in {folder} is {model.config.hidden_size} wide; GPT-SoVITS needs {BERT_DIM}")
        return cls(tokenizer, model.to(device))

    @property
    def device(self) -> torch.device:
        return self.model.device

    def token_ids(self, norm_text: str) -> list[int]:
        """Token ids with [CLS] and [SEP], as ``tokenizer(norm_text)`` gives them."""
        return self.tokenizer(norm_text)["input_ids"]

    @torch.no_grad()  # not inference_mode: the outputs also feed fine-tuning, where autograd must accept them
    def hidden(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``hidden_states[-3]`` of the full model, [B, n, 1024], for token ids [B, n].

        ``attention_mask`` is [B, n] (padding) or [B, n, n] (which token sees which).
        """
        def to_device(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(self.device)

        return self.model(
            input_ids=to_device(input_ids), attention_mask=to_device(attention_mask), position_ids=to_device(position_ids)
        ).last_hidden_state

    def features(self, norm_text: str, word2ph: Sequence[int]) -> torch.Tensor:
        """[1024, sum(word2ph)] for one Chinese segment (upstream ``get_bert_feature``)."""
        return self.features_many([(norm_text, word2ph)])[0]

    def features_many(
        self, items: Sequence[tuple[str, Sequence[int]]], row_tokens: int = 512, rows_per_call: int = 8
    ) -> list[torch.Tensor]:
        """``features`` for many segments at once; results in the order given.

        Segments are packed side by side into rows of up to ``row_tokens`` tokens, each attending only
        to itself with its own positions, so no work is spent on padding and the weights are read once
        per call rather than once per segment. Equal to one-by-one calls up to float rounding (~1e-6).
        """
        encoded = [self._encode(norm_text, word2ph) for norm_text, word2ph in items]
        lengths = [len(ids) for ids in encoded]
        rows = _pack_rows(lengths, max([row_tokens, *lengths]))
        states: list[torch.Tensor] = [torch.empty(0)] * len(items)
        for first in range(0, len(rows), rows_per_call):
            for i, state in self._run_rows(rows[first : first + rows_per_call], encoded):
                states[i] = state
        out = []
        for (_, word2ph), state in zip(items, states, strict=True):
            # upstream reads the first len(word2ph) tokens after [CLS]
            out.append(expand_word_features(state[1 : 1 + len(word2ph)], list(word2ph)))
        return out

    def _encode(self, norm_text: str, word2ph: Sequence[int]) -> list[int]:
        if len(word2ph) != len(norm_text):
            raise BadText(
                f"BERT needs one word2ph entry per character: {len(norm_text)} characters in "
                f"{norm_text!r}, {len(word2ph)} entries"
            )
        ids = self.token_ids(norm_text)
        if len(ids) - 2 < len(word2ph):
            raise BadText(f"{norm_text!r} gives {len(ids) - 2} BERT tokens for {len(word2ph)} characters")
        if len(ids) - 2 > MAX_TOKENS:
            raise BadText(f"a segment of {len(ids) - 2} tokens is too long for BERT (at most {MAX_TOKENS})")
        return ids

    def _run_rows(self, rows: list[list[int]], encoded: list[list[int]]) -> list[tuple[int, torch.Tensor]]:
        """One forward pass over packed rows -> (segment index, its token states) pairs."""
        if len(rows) == 1 and len(rows[0]) == 1:  # a lone segment runs exactly as upstream runs it
            i = rows[0][0]
            return [(i, self.hidden(torch.tensor([encoded[i]]))[0])]
        width = max(sum(len(encoded[i]) for i in row) for row in rows)
        input_ids = torch.zeros(len(rows), width, dtype=torch.long)
        positions = torch.zeros(len(rows), width, dtype=torch.long)
        owner = torch.full((len(rows), width), -1)  # which segment each column holds; -1 = padding
        spans = []
        for r, row in enumerate(rows):
            start = 0
            for i in row:
                n = len(encoded[i])
                input_ids[r, start : start + n] = torch.tensor(encoded[i])
                positions[r, start : start + n] = torch.arange(n)
                owner[r, start : start + n] = i
                spans.append((i, r, start, n))
                start += n
        sees = (owner[:, :, None] == owner[:, None, :]) & (owner[:, :, None] >= 0)
        hidden = self.hidden(input_ids, sees.long(), positions)
        return [(i, hidden[r, start : start + n]) for i, r, start, n in spans]

    def phone_features(self, segments: Sequence[PhoneSegment]) -> torch.Tensor:
        """[1024, total phones] for one text's language segments (``engine.text.phonemize_segments``).

        As upstream's ``get_phones_and_bert``: Chinese segments get BERT features, every other language
        zeros, concatenated along the phone axis.
        """
        return self.phone_features_many([segments])[0]

    def phone_features_many(self, texts: Sequence[Sequence[PhoneSegment]]) -> list[torch.Tensor]:
        """``phone_features`` for many texts with all their Chinese segments in one batched run."""
        chinese = [(t, s) for t, segments in enumerate(texts) for s, seg in enumerate(segments) if seg.lang == "zh"]
        found = self.features_many([(texts[t][s].norm_text, texts[t][s].word2ph or []) for t, s in chinese])
        by_place = dict(zip(chinese, found, strict=True))
        out = []
        for t, segments in enumerate(texts):
            parts = [
                by_place.get((t, s), torch.zeros(BERT_DIM, len(seg.phones), device=self.device, dtype=self.model.dtype))
                for s, seg in enumerate(segments)
            ]
            empty = torch.zeros(BERT_DIM, 0, device=self.device, dtype=self.model.dtype)
            out.append(torch.cat(parts, dim=1) if parts else empty)
        return out


def _pack_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """Segment indices grouped into as few rows of at most ``capacity`` tokens as a greedy fill finds,
    longest first, each into the emptiest row, so that rows end up about equally long."""
    n_rows = max(1, -(-sum(lengths) // capacity))
    rows: list[list[int]] = [[] for _ in range(n_rows)]
    loads = [0] * n_rows
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        r = min(range(len(rows)), key=loads.__getitem__)
        if loads[r] + lengths[i] > capacity:
            rows.append([])
            loads.append(0)
            r = len(rows) - 1
        rows[r].append(i)
        loads[r] += lengths[i]
    return [row for row in rows if row]


# --- seeded random folders in the official layout -------------------------------------------------

# CJK and full-width punctuation the frontend may leave in a normalised Chinese segment
CJK_PUNCTUATION = "，。！？、；：“”‘’（）《》〈〉【】「」『』〔〕…—～·￥％＋－＝／＼｜＠＃＆＊＾＿｀＜＞［］｛｝"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CJK_FIRST, CJK_LAST = 0x4E00, 0x9FA5  # the block chinese-roberta-wwm-ext's vocabulary draws on
FULL_VOCAB = 21128
TINY_HANZI = 3000


def build_vocab(size: str) -> list[str]:
    """A WordPiece vocabulary in which every Chinese character is one token.

    Specials, printable lower-case ASCII, CJK punctuation, Chinese characters (full: the whole
    U+4E00..U+9FA5 block; tiny: the 3000 most frequent, ~99 % of running text), ``##`` pieces for
    letters and digits, and for ``full`` ``[unusedN]`` entries up to the official 21128.
    """
    ascii_chars = [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    if size == "full":
        hanzi = [chr(c) for c in range(CJK_FIRST, CJK_LAST + 1)]
    else:
        hanzi = sorted(common_hanzi(TINY_HANZI))
    pieces = ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    vocab = SPECIALS + ascii_chars + list(dict.fromkeys(CJK_PUNCTUATION)) + hanzi + pieces
    if size == "full":
        vocab += [f"[unused{i}]" for i in range(1, FULL_VOCAB - len(vocab) + 1)]
    return vocab


def common_hanzi(n: int) -> list[str]:
    """The n most frequent characters of the block, weighted by jieba's word frequencies."""
    counts: Counter[str] = Counter()
    with jieba.get_dict_file() as f:
        for line in f:
            word, freq = line.decode("utf-8").split()[:2]
            for char in word:
                if CJK_FIRST <= ord(char) <= CJK_LAST:
                    counts[char] += int(freq)
    return [char for char, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def bert_config(size: str, vocab_size: int) -> BertConfig:
    """``full``: the manifest's BertConfig. ``tiny``: 1024 wide (hard-coded downstream), 3 layers."""
    if size == "full":
        return BertConfig(
            vocab_size=vocab_size,
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            max_position_embeddings=512,
            type_vocab_size=2,
        )
    if size == "tiny":
        return BertConfig(
            vocab_size=vocab_size,
            hidden_size=BERT_DIM,
            num_hidden_layers=3,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=512,
        )
    raise ValueError(f"unknown model size {size!r}; expected 'tiny' or 'full'")


def write_bert_tokenizer(folder: str | os.PathLike, size: str = "tiny") -> BertTokenizerFast:
    """vocab.txt, tokenizer.json and the tokenizer configs (lower-casing, Chinese characters split)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(build_vocab(size)) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True, tokenize_chinese_chars=True)
    tokenizer.save_pretrained(folder)
    return tokenizer


def write_random_bert(folder: str | os.PathLike, size: str = "tiny", seed: int = 0) -> Path:
    """A seeded random ``BertForMaskedLM`` folder with tokenizer files, as upstream loads it."""
    folder = Path(folder)
    tokenizer = write_bert_tokenizer(folder, size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForMaskedLM(bert_config(size, len(tokenizer)))
    model.save_pretrained(folder)
    return folder
