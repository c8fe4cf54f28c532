"""g2pW base readings: sentences -> one TONE3 pinyin (or the mark itself) per character.

G2PW.md sections 2-5: OpenCC s2tw decides which characters are polyphonic; those are read by the
ONNX model (one call for all sentences of a text, cropped to 16 characters of context either side),
the monophonic ones from MONOPHONIC_CHARS, everything else by pypinyin over the whole sentence.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from engine.errors import BadText, ModelsMissing
from engine.text.g2pw import folder as files
from engine.text.g2pw.inputs import Query, build_rows, padded, run_groups

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Switches:
    """Upstream's env switches g2pw_polyphonic_context_chars and g2pw_sentence_dedup."""

    context_chars: int = 16  # 0: no crop
    dedup: bool = True


@cache
def _s2tw():  # noqa: ANN202 - opencc.OpenCC
    import opencc

    if not hasattr(opencc, "clib"):
        log.warning("opencc is not the OpenCC library (opencc-python-reimplemented shadows it?): s2tw phrase "
                    "conversion may differ from upstream; reinstall with `pip install --force-reinstall "
                    "--no-deps opencc==1.4.2`")
    return opencc.OpenCC("s2tw")


@lru_cache(maxsize=8192)
def _sentence_pinyin(taiwan: str) -> tuple[str, ...]:
    """pypinyin's TONE3 reading of t2s(s2tw(sentence)) with its own phrase segmentation, one per entry."""
    from pypinyin import Style, pinyin

    from engine.text.zh_normalize import to_simplified

    return tuple(r[0] for r in pinyin(to_simplified(taiwan), style=Style.TONE3, neutral_tone_with_five=True))


def _fingerprint(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()[:16]


class G2PWConverter:
    """The warm g2pW reader of one process: data tables, tokenizer and ONNX session loaded once."""

    def __init__(self, model_dir: Path, tokenizer_dir: Path, switches: Switches | None = None) -> None:
        model_dir, tokenizer_dir = Path(model_dir), Path(tokenizer_dir)
        files.check_folder(model_dir)
        self.switches = switches or Switches()
        self.tables = files.read_tables(model_dir)
        onnx_path = files.onnx_file(model_dir)
        assert onnx_path is not None  # check_folder found it
        self.session = files.open_session(onnx_path, model_dir)
        self.tokenizer = _load_tokenizer(tokenizer_dir)
        self._word_tokens: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        fingerprinted = [onnx_path, *(model_dir / n for n in files.DATA_FILES[:4])]
        fingerprinted += sorted(p for p in tokenizer_dir.iterdir() if p.suffix in (".txt", ".json"))
        sw = self.switches
        self.reader_id = f"g2pw-{_fingerprint(fingerprinted)}-c{sw.context_chars}{'d' if sw.dedup else ''}"
        self.runs = 0  # ONNX runs so far (speed checks)

    # -- readings ---------------------------------------------------------------------------------
    def __call__(self, sentences: list[str]) -> list[list[str]]:
        """Per sentence, one reading per character: pinyin with tone digit 1-5, or the mark itself."""
        converted = [self._to_taiwan(s) for s in sentences]
        results: list[list[str | None]] = []
        queries: list[Query] = []
        targets: list[tuple[int, int]] = []  # (sentence, character) of each query
        for n, text in enumerate(converted):
            readings, polyphonic = self._fixed_readings(text)
            results.append(readings)
            if polyphonic:
                left, right = self._crop(polyphonic, len(text))
                for i in polyphonic:
                    queries.append(Query(text[left:right], i - left))
                    targets.append((n, i))
        for (n, i), label in zip(targets, self._predict(queries), strict=True):
            results[n][i] = self._pinyin_of(label, converted[n][i])
        return results  # type: ignore[return-value] - every slot is filled now

    def _to_taiwan(self, sentence: str) -> str:
        converted = _s2tw().convert(sentence)
        if len(converted) != len(sentence):  # upstream asserts this
            raise BadText(f"OpenCC s2tw changed the length of {sentence!r}")
        return converted

    def _fixed_readings(self, text: str) -> tuple[list[str | None], list[int]]:
        """Readings of the characters the model does not read, and the indices of those it does."""
        sentence_reading = _sentence_pinyin(text)
        readings: list[str | None] = [None] * len(text)
        polyphonic = []
        for i, char in enumerate(text):
            if char in self.tables.queried:
                polyphonic.append(i)
            elif char in self.tables.monophonic:
                readings[i] = self._pinyin_of(self.tables.monophonic[char], char)
            elif i < len(sentence_reading):
                readings[i] = sentence_reading[i]
            else:
                raise BadText(f"cannot read {char!r} in {text!r}")
        return readings, polyphonic

    def _crop(self, polyphonic: list[int], length: int) -> tuple[int, int]:
        n = self.switches.context_chars
        if n <= 0:
            return 0, length
        return max(0, polyphonic[0] - n), min(length, polyphonic[-1] + n + 1)

    def _pinyin_of(self, bopomofo: str, char: str) -> str:
        syllable = self.tables.bopomofo_to_pinyin.get(bopomofo[:-1])
        if not syllable or bopomofo[-1] not in "12345":  # upstream crashes on these
            raise BadText(f"g2pW reads {char!r} as {bopomofo!r}, which has no pinyin")
        return syllable + bopomofo[-1]

    # -- the model --------------------------------------------------------------------------------
    def _tokens_of(self, word: str) -> list[str]:
        tokens = self._word_tokens.get(word)
        if tokens is None:
            tokens = self._word_tokens[word] = self.tokenizer.tokenize(word)
        return tokens

    def _predict(self, queries: list[Query]) -> list[str]:
        if not queries:
            return []
        rows = build_rows(queries, self._tokens_of, self.tokenizer.convert_tokens_to_ids)
        input_ids, attention = padded(rows.ids)
        chars = [q.text.lower()[q.index] for q in queries]
        masks = np.stack([self.tables.masks[c] for c in chars])
        char_ids = np.array([self.tables.char_ids[c] for c in chars], np.int64)
        positions = np.array(rows.positions, np.int64)
        labels: list[str] = [""] * len(queries)
        for group, shared in run_groups([q.text for q in queries], self.switches.dedup):
            tokens = group[:1] if shared else group
            feed = {
                "input_ids": input_ids[tokens],
                "token_type_ids": np.zeros_like(input_ids[tokens]),
                "attention_mask": attention[tokens],
                "phoneme_mask": masks[group],
                "char_ids": char_ids[group],
                "position_ids": positions[group],
            }
            with self._lock:
                probs = self.session.run(None, feed)[0]
                self.runs += 1
            for i, best in zip(group, np.argmax(probs, axis=1), strict=True):
                labels[i] = self.tables.labels[int(best)]
        return labels


def _load_tokenizer(folder: Path):  # noqa: ANN202 - transformers tokenizer
    from transformers import AutoTokenizer

    if not (folder / "vocab.txt").is_file() and not (folder / "tokenizer.json").is_file():
        raise ModelsMissing(f"The g2pW tokenizer folder {folder} has no vocab.txt or tokenizer.json; point "
                            "ECHODIARY_G2PW_TOKENIZER_DIR at the BERT folder (chinese-roberta-wwm-ext-large).")
    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
