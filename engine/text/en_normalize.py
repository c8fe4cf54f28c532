"""English text normalisation (upstream english.text_normalize + en_normalization.expend.normalize).

Numbers, times, units, money, fractions and ordinals become words (inflect), everything but ASCII
letters, spaces and `' . , ? ! -` is dropped, and capitals inside a word start a new word
(`ChatGPT` -> `Chat G P T`), which is how upstream spells acronyms.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

from engine.errors import BadText

_UNIT_WORDS = {
    "m": ("meter", "meters"), "km": ("kilometer", "kilometers"),
    "km/h": ("kilometer per hour", "kilometers per hour"), "ft": ("feet", "feet"), "L": ("liter", "liters"),
    "tbsp": ("tablespoon", "tablespoons"), "tsp": ("teaspoon", "teaspoons"), "h": ("hour", "hours"),
    "min": ("minute", "minutes"), "s": ("second", "seconds"), "°C": ("degree celsius", "degrees celsius"),
    "°F": ("degree fahrenheit", "degrees fahrenheit"),
}  # fmt: skip

# Only these three of upstream's replacement table ever match (the others are escaped regex classes).
_MARKS = str.maketrans({"。": ".", "！": "!", "？": "?"})
_LIST_NUMBER = re.compile(r"\b([0-9]+)\. ")
_SUP = "⁰¹²³⁴⁵⁶⁷⁸⁹ˣʸⁿ"
_OPERAND = rf"(?:-?\d+(?:\.\d+)?[{_SUP}]*|\.\d+[{_SUP}]*|[A-Za-z][{_SUP}]*)"
_ARITHMETIC = re.compile(rf"({_OPERAND})\s+([+\-×÷=])\s+({_OPERAND})")
_OPERATOR_WORDS = {"+": " plus ", "-": " minus ", "×": " times ", "÷": " divided by ", "=": " Equals "}
_NEGATIVE = re.compile(r"(?:^|\s+)(-)(\d+)")
_THOUSANDS = re.compile(r"([0-9][0-9,]+[0-9])")
_TIME = re.compile(r"\b([01]?[0-9]|2[0-3]):([0-5][0-9])\b")
_MEASURE = re.compile(r"\b([0-9]+(\.[0-9]+)?(m|km|km/h|ft|L|tbsp|tsp|h|min|s|°C|°F))\b")
_POUNDS = (re.compile(r"£([0-9.,]*[0-9]+)"), re.compile(r"([0-9.,]*[0-9]+)£"))
_DOLLARS = (re.compile(r"\$([0-9.,]*[0-9]+)"), re.compile(r"([(0-9.,]*[0-9]+)\$"))
_DECIMAL = re.compile(r"([0-9]+\.\s*[0-9]+)")
_FRACTION = re.compile(r"([0-9]+/[0-9]+)")
_ORDINAL = re.compile(r"[0-9]+(st|nd|rd|th)")
_INTEGER = re.compile(r"[0-9]+")
_NOT_KEPT = re.compile(r"[^ A-Za-z'.,?!\-]")
_INNER_CAPITAL = re.compile(r"(?<!^)(?<![\s])([A-Z])")
_REPEATED_MARKS = re.compile(r"([!?…,.\-\s])[!?…,.\-]+")


@cache
def _inflect():  # noqa: ANN202 - the inflect engine
    import inflect

    return inflect.engine()


def _words(n: int, **kw: object) -> str:
    return _inflect().number_to_words(n, **kw)


def _list_number(m: re.Match) -> str:
    return _inflect().ordinal(m.group(1)) + ", "


def _time(m: re.Match) -> str:
    hours, minutes = int(m.group(1)), int(m.group(2))
    period = "a.m." if hours < 12 else "p.m."
    hours = hours - 12 if hours > 12 else hours
    if minutes == 0:
        return f"{_words(hours)} o'clock {period}"
    return f"{_words(hours)} {_words(minutes)} {period}"


def _measure(m: re.Match) -> str:
    unit = m.group(3)
    number = int(m.group(1).replace(unit, "").replace(".", ""))
    plural = not (m.group(2) is None and number == 1)
    return m.group(1).replace(unit, " " + _UNIT_WORDS[unit][plural])


def _money(m: re.Match, major: tuple[str, str], minor: tuple[str, str]) -> str:
    text = m.group(1)
    parts = text.split(".")
    if len(parts) > 2:
        return f"{text} {major[1]}"
    try:
        whole = int(parts[0]) if parts[0] else 0
        cents = int(parts[1].ljust(2, "0")) if len(parts) > 1 and parts[1] else 0
    except ValueError:  # e.g. "(12$": upstream's pattern admits "(" and then fails the same way
        raise BadText(f"cannot read the amount {m.group(0)!r}") from None
    major_word = major[0] if whole == 1 else major[1]
    minor_word = minor[0] if cents == 1 else minor[1]
    if whole and cents:
        return f"{whole} {major_word} and {cents} {minor_word}"
    if whole:
        return f"{whole} {major_word}"
    if cents:
        return f"{cents} {minor_word}"
    return f"zero {major[1]}"


def _decimal(m: re.Match) -> str:
    whole, _, fraction = m.group(1).partition(".")
    return whole + " point " + " ".join(fraction)


def _fraction(m: re.Match) -> str:
    numerator, denominator = (int(x) for x in m.group(0).split("/"))
    head = _words(numerator)
    if denominator == 1:
        return head
    if denominator == 2:
        return f"{head} {'half' if numerator == 1 else 'halves'}"
    tail = _inflect().ordinal(_words(denominator))
    return f"{head} {tail}{'s' if numerator > 1 else ''}"


def _integer(m: re.Match) -> str:
    n = int(m.group(0))
    if 1000 < n < 3000:  # read like a year
        if n == 2000:
            return "two thousand"
        if 2000 < n < 2010:
            return "two thousand " + _words(n % 100)
        if n % 100 == 0:
            return _words(n // 100) + " hundred"
        return _words(n, andword="", zero="oh", group=2).replace(", ", " ")
    return _words(n, andword="")


def expand(text: str) -> str:
    text = _LIST_NUMBER.sub(_list_number, text)
    while _ARITHMETIC.search(text):
        text = _ARITHMETIC.sub(lambda m: m.group(1) + _OPERATOR_WORDS[m.group(2)] + m.group(3), text)
    text = _NEGATIVE.sub(lambda m: "negative " + m.group(2), text)
    text = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), text)
    text = _TIME.sub(_time, text)
    text = _MEASURE.sub(_measure, text)
    for pattern in _POUNDS:
        text = pattern.sub(lambda m: _money(m, ("pound", "pounds"), ("penny", "pence")), text)
    for pattern in _DOLLARS:
        text = pattern.sub(lambda m: _money(m, ("dollar", "dollars"), ("cent", "cents")), text)
    text = _DECIMAL.sub(_decimal, text)
    text = _FRACTION.sub(_fraction, text)
    text = _ORDINAL.sub(lambda m: _words(m.group(0)), text)
    text = _INTEGER.sub(_integer, text)
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    text = _NOT_KEPT.sub("", text.replace("%", " percent"))
    text = re.sub(r"(?i)i\.e\.", "that is", text)
    text = re.sub(r"(?i)e\.g\.", "for example", text)
    return _INNER_CAPITAL.sub(r" \1", text)


def normalize_en(text: str) -> str:
    """Upstream english.text_normalize."""
    return _REPEATED_MARKS.sub(r"\1", expand(text.translate(_MARKS)))
