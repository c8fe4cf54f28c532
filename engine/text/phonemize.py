"""Mixed-language text -> phones per language segment (upstream get_phones_and_bert without BERT)."""

from __future__ import annotations

import re

from engine.errors import BadText
from engine.text.chunker import MAX_TEXT_CHARS, check_text
from engine.text.cleaner import clean_text
from engine.text.langsplit import split_languages

LANGUAGES = ("zh", "all_zh", "en", "auto")
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


def _phonemize(text: str, language: str, retried: bool) -> tuple[list[str], list[list[int] | None], str]:
    text = re.sub(r" {2,}", " ", text)
    phones: list[str] = []
    word2ph: list[list[int] | None] = []
    norm_parts: list[str] = []
    for lang, segment in language_segments(text, language):
        if lang not in ("zh", "en"):
            raise BadText(f"text in language {lang!r} cannot be read yet: {segment!r}")
        seg_phones, seg_word2ph, seg_norm = clean_text(segment, lang)
        phones += seg_phones
        word2ph.append(seg_word2ph)
        norm_parts.append(seg_norm)
    if not retried and len(phones) < _MIN_PHONES:
        return _phonemize("." + text, language, retried=True)
    return phones, word2ph, "".join(norm_parts)
