"""Mixed-language text -> phones per language segment (upstream get_phones_and_bert without BERT)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from contracts import TEXT_LANGS
from engine.errors import BadText
from engine.text.chunker import MAX_TEXT_CHARS, check_text
from engine.text.cleaner import clean_text
from engine.text.langsplit import split_languages

LANGUAGES = TEXT_LANGS
_MIN_PHONES = 6  # fewer phones than this and upstream retries with a leading "."


def language_segments(text: str, language: str) -> list[tuple[str, str]]:
    """(segment language, segment text) pairs as upstream builds them for `language`."""
    if language == "all_zh":
        return [(p["lang"], p["text"]) for p in split_languages(text, "zh")]
    if language == "en":
        return [("en", text)]
    if language == "auto":
        return [(p["lang"], p["text"]) for p in split_languages(text)]
    # zh (and any single language): English pieces stay English, everything else is read as `language`
    segments: list[tuple[str, str]] = []
    for piece in split_languages(text):
        is_en = piece["lang"] == "en"
        if segments and (segments[-1][0] == "en") == is_en:
            segments[-1] = (segments[-1][0], segments[-1][1] + piece["text"])
        else:
            segments.append(("en" if is_en else language, piece["text"]))
    return segments


def phonemize(
    text: str, language: str, max_text_chars: int = MAX_TEXT_CHARS
) -> tuple[list[str], list[list[int] | None], str]:
    """Phones (v2 symbols), word2ph per language segment (a list for zh, None for en), norm_text.

    language: "zh" (Chinese with English inside), "all_zh", "en" or "auto". Only zh and en g2p exist
    here, so an `auto` segment detected as Japanese or Korean raises BadText. Empty, over-long or
    unspeakable text (only symbols or emoji) raises BadText too.
    """
    check_text(text, max_text_chars)
    if language not in LANGUAGES:
        raise BadText(f"unsupported language {language!r}; use one of {', '.join(LANGUAGES)}")
    return _phonemize(text, language, retried=False)


@dataclass(frozen=True)
class PhoneSegment:
    """One language segment of a text: its phones, word2ph (zh only) and normalised text."""

    lang: str
    phones: list[str]
    word2ph: list[int] | None
    norm_text: str


def phonemize_segments(text: str, language: str, max_text_chars: int = MAX_TEXT_CHARS) -> list[PhoneSegment]:
    """:func:`phonemize` per language segment, which the BERT features need (zh segments only)."""
    check_text(text, max_text_chars)
    if language not in LANGUAGES:
        raise BadText(f"unsupported language {language!r}; use one of {', '.join(LANGUAGES)}")
    return _segments(text, language, retried=False)


def _phonemize(text: str, language: str, retried: bool) -> tuple[list[str], list[list[int] | None], str]:
    segments = _segments(text, language, retried)
    phones = [p for seg in segments for p in seg.phones]
    return phones, [seg.word2ph for seg in segments], "".join(seg.norm_text for seg in segments)


def _segments(text: str, language: str, retried: bool) -> list[PhoneSegment]:
    text = re.sub(r" {2,}", " ", text)
    segments: list[PhoneSegment] = []
    for lang, segment in language_segments(text, language):
        if lang not in ("zh", "en"):
            raise BadText(f"text in language {lang!r} cannot be read yet: {segment!r}")
        seg_phones, seg_word2ph, seg_norm = clean_text(segment, lang)
        segments.append(PhoneSegment(lang, seg_phones, seg_word2ph, seg_norm))
    if not retried and sum(len(seg.phones) for seg in segments) < _MIN_PHONES:
        return _segments("." + text, language, retried=True)
    return segments
