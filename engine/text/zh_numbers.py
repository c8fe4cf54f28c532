"""Chinese verbalisation of numbers: cardinals, digit strings, decimals (upstream zh_normalization rules)."""

from __future__ import annotations

DIGIT_NAMES = "零一二三四五六七八九"
# Powers of ten that have their own character; larger powers are built from these.
_UNITS = ((8, "亿"), (4, "万"), (3, "千"), (2, "百"), (1, "十"))


def read_digits(digits: str, alt_one: bool = False) -> str:
    """'2025' -> 二零二五; with alt_one the digit 1 is read 幺 (phone numbers, codes)."""
    out = "".join(DIGIT_NAMES[int(d)] for d in digits)
    return out.replace("一", "幺") if alt_one else out


def _cardinal_parts(digits: str, use_zero: bool = True) -> list[str]:
    stripped = digits.lstrip("0")
    if not stripped:
        return []
    if len(stripped) == 1:
        # a single digit after dropped zeros reads 零N inside a bigger number (1005 -> 一千零五)
        if use_zero and len(stripped) < len(digits):
            return ["零", DIGIT_NAMES[int(stripped)]]
        return [DIGIT_NAMES[int(stripped)]]
    power, unit = next((p, u) for p, u in _UNITS if p < len(stripped))
    return _cardinal_parts(digits[:-power]) + [unit] + _cardinal_parts(digits[-power:])


def read_cardinal(digits: str) -> str:
    """'120' -> 一百二十, '10' -> 十, '0' -> 零, '' -> ''."""
    if not digits:
        return ""
    digits = digits.lstrip("0")
    if not digits:
        return "零"
    parts = _cardinal_parts(digits)
    if len(parts) >= 2 and parts[0] == "一" and parts[1] == "十":
        parts = parts[1:]
    return "".join(parts)


def read_number(text: str) -> str:
    """A plain or decimal number: '65.5' -> 六十五点五, '.5' -> 零点五, '5.30' -> 五点三零."""
    integer, _, decimal = text.partition(".")
    if "." in decimal:
        raise ValueError(f"number {text!r} has more than one decimal point")
    out = read_cardinal(integer)
    # trailing zeros of the decimal part collapse to a single zero
    decimal = decimal.rstrip("0") + "0" if decimal.endswith("0") else decimal
    if decimal:
        out = (out or "零") + "点" + read_digits(decimal)
    return out
