"""Cutting a target text into synthesis segments: upstream's cut0..cut5 and pre_seg_text, non-streaming."""

from __future__ import annotations

import re
from collections.abc import Callable

from contracts import SplitMethod
from engine.errors import BadText

# Marks after which a sentence may end (upstream `splits`).
SPLITS = frozenset("，。？！,.?!~:：—…")
_FILLER = frozenset("!?…,.- ")  # pieces made only of these are dropped by cut1..cut4
_CUT5_MARKS = frozenset(",.;?!、，。？！：…")
_REPEATED_MARKS = re.compile(r"([!?…,.\-])[!?…,.\-]+")
_FIRST_SENTENCE = re.compile("[" + "".join(re.escape(c) for c in sorted(SPLITS)) + "]")
_BIG_TEXT_SPLIT = re.compile("([" + "".join(re.escape(c) for c in sorted(SPLITS)) + "])")
MAX_SEGMENT_CHARS = 510
_MERGE_BELOW = 5


def _sentences(text: str) -> list[str]:
    """Cut after every mark of SPLITS, each piece keeping its mark (`……` counts as `。`, `——` as `，`)."""
    text = text.replace("……", "。").replace("——", "，")
    if text[-1] not in SPLITS:
        text += "。"
    pieces, start = [], 0
    for i, ch in enumerate(text):
        if ch in SPLITS:
            pieces.append(text[start : i + 1])
            start = i + 1
    return pieces


def _keep(pieces: list[str], filler: frozenset[str] = _FILLER) -> str:
    return "\n".join(p for p in pieces if not set(p) <= filler)


def cut0(text: str) -> str:
    return "\n" if set(text) <= _FILLER else text


def cut1(text: str) -> str:
    """Groups of four sentences; the last group takes the rest (5 to 8)."""
    text = text.strip("\n")
    pieces = _sentences(text)
    bounds: list[int | None] = list(range(0, len(pieces), 4))
    bounds[-1] = None
    if len(bounds) == 1:
        return _keep([text])
    return _keep(["".join(pieces[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)])


def cut2(text: str) -> str:
    """Groups of just over 50 characters; a short tail joins the group before it."""
    text = text.strip("\n")
    pieces = _sentences(text)
    if len(pieces) < 2:
        return text
    groups, current = [], ""
    for piece in pieces:
        current += piece
        if len(current) > 50:
            groups.append(current)
            current = ""
    if current:
        groups.append(current)
    if len(groups) > 1 and len(groups[-1]) < 50:
        groups[-2:] = [groups[-2] + groups[-1]]
    return _keep(groups)


def cut3(text: str) -> str:
    """At every Chinese full stop, which is removed."""
    return _keep(text.strip("\n").strip("。").split("。"))


def cut4(text: str) -> str:
    """At every English full stop not touching a digit; the dot is removed."""
    return _keep(re.split(r"(?<!\d)\.(?!\d)", text.strip("\n").strip(".")))


def cut5(text: str) -> str:
    """After every punctuation mark, except a decimal point between digits."""
    text = text.strip("\n")
    pieces, current = [], []
    for i, ch in enumerate(text):
        current.append(ch)
        decimal_point = ch == "." and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()
        if ch in _CUT5_MARKS and not decimal_point:
            pieces.append("".join(current))
            current = []
    if current:
        pieces.append("".join(current))
    return _keep(pieces, _CUT5_MARKS)


METHODS: dict[SplitMethod, Callable[[str], str]] = {  # the names contracts.SPLIT_METHODS lists
    "cut0": cut0, "cut1": cut1, "cut2": cut2, "cut3": cut3, "cut4": cut4, "cut5": cut5,
}  # fmt: skip


def _merge_short(pieces: list[str], threshold: int) -> list[str]:
    if len(pieces) < 2:
        return pieces
    out, current = [], ""
    for piece in pieces:
        current += piece
        if len(current) >= threshold:
            out.append(current)
            current = ""
    if current:
        if out:
            out[-1] += current
        else:
            out.append(current)
    return out


def _split_big(text: str, max_len: int = MAX_SEGMENT_CHARS) -> list[str]:
    out, current = [], ""
    for run in _BIG_TEXT_SPLIT.split(text):
        if len(current + run) > max_len:
            out.append(current)  # may be empty when the first run alone is too long, as upstream
            current = run
        else:
            current += run
    if current:
        out.append(current)
    return out


def collapse_punctuation(text: str) -> str:
    """Runs of `! ? … , . -` become their first mark (upstream TextPreprocessor, before cutting)."""
    return _REPEATED_MARKS.sub(r"\1", text)


def pre_seg_text(text: str, language: str, method: str) -> list[str]:
    """Upstream TextPreprocessor.pre_seg_text: cut with `method`, tidy, merge short pieces, end marks."""
    if method not in METHODS:
        raise BadText(f"unknown split method {method!r}; use one of {', '.join(METHODS)}")
    stop = "." if language == "en" else "。"
    text = text.strip("\n")
    if not text:
        return []
    if text[0] not in SPLITS and len(_FIRST_SENTENCE.split(text)[0].strip()) < 4:
        text = stop + text
    text = METHODS[method](text)
    while "\n\n" in text:
        text = text.replace("\n\n", "\n")
    pieces = text.split("\n")
    if all(p in (" ", "\n", "") for p in pieces):
        raise BadText("the text has nothing to read: only punctuation or blanks")
    pieces = _merge_short([p for p in pieces if p not in (" ", "")], _MERGE_BELOW)
    segments: list[str] = []
    for piece in pieces:
        if not piece.strip() or not re.sub(r"\W+", "", piece):
            continue
        if piece[-1] not in SPLITS:
            piece += stop
        segments.extend(_split_big(piece) if len(piece) > MAX_SEGMENT_CHARS else [piece])
    return segments


def split_text(text: str, language: str, method: str) -> list[str]:
    """Upstream's non-streaming target-text path: collapse punctuation runs, then pre_seg_text.

    Raises BadText for text with nothing to read (upstream raises ValueError there) or an unknown method.
    """
    return pre_seg_text(collapse_punctuation(text), language, method)
