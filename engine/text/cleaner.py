"""Single-language cleaner: text -> (v2 phones, word2ph, normalised text), as upstream text.cleaner v2."""

from __future__ import annotations

from engine.text.en_g2p import g2p_en
from engine.text.en_normalize import normalize_en
from engine.text.symbols import symbol_to_id
from engine.text.zh_g2p import g2p_zh
from engine.text.zh_normalize import normalize_zh
from engine.text.zh_reader import active_reader

# A silence mark typed into Chinese text: every comma phone of that text becomes this symbol.
_SILENCE_MARKS = (("￥", "SP2"), ("^", "SP3"))


def clean_text(text: str, language: str) -> tuple[list[str], list[int] | None, str]:
    """Phones (v2 symbol strings), word2ph (zh: one entry per norm_text character; en: None), norm_text.

    language is "zh" or "en"; any other value is read as English of a single space, as upstream does.
    """
    if language not in ("zh", "en"):
        language, text = "en", " "
    if language == "zh":
        for mark, symbol in _SILENCE_MARKS:
            if mark in text:
                phones, word2ph, norm_text = _clean_zh(text.replace(mark, ","))
                return [symbol if p == "," else p for p in phones], word2ph, norm_text
        return _clean_zh(text)
    norm_text = normalize_en(text)
    phones = g2p_en(norm_text)
    if len(phones) < 4:
        phones = [","] + phones  # upstream pads very short English
    known = symbol_to_id()
    return [p if p in known else "UNK" for p in phones], None, norm_text


def _clean_zh(text: str) -> tuple[list[str], list[int], str]:
    norm_text = normalize_zh(text)
    phones, word2ph = g2p_zh(norm_text, active_reader())
    if len(word2ph) != len(norm_text) or sum(word2ph) != len(phones):
        raise AssertionError(f"g2p misaligned on {norm_text!r}")  # a bug of ours, not bad input
    return phones, word2ph, norm_text
