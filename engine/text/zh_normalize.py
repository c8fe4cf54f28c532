"""Chinese text normalisation: numbers, dates, times, units, symbols -> Chinese characters and 6 marks.

Follows upstream GPT-SoVITS v2 (`chinese2.text_normalize`, itself PaddleSpeech's zh_normalization),
rule for rule and in the same order, quirks included: the order of the rules decides how `3-5公里`,
`0.5mm` or `Starbucks` come out, and the official weights were trained on that output.
"""

from __future__ import annotations

import os
import re
from functools import cache

from engine.text.zh_numbers import read_cardinal, read_digits, read_number

_NUM = r"(?:\d+(?:\.\d+)?|\.\d+)"  # a number operand: 12, 1.5 or .5
_SUP = "⁰¹²³⁴⁵⁶⁷⁸⁹ˣʸⁿ"

# Step 1: sentence split. Deleted first; then break after these marks (a trailing ’ stays with its mark).
_SPLIT_DELETE = re.compile(r"[—《》【】<>{}()（）#&@“”^_|\\]")
_SENTENCE_END = re.compile(r"([：、，；。？！,;?!]’?)")

_DATE = re.compile(r"(\d{4}|\d{2})年((0?[1-9]|1[0-2])月)?(((0?[1-9])|((1|2)[0-9])|30|31)([日号]))?")
_DATE_NUMERIC = re.compile(r"(\d{4})([- /.])(0[1-9]|1[012])\2(0[1-9]|[12][0-9]|3[01])")
_CLOCK = r"([0-1]?[0-9]|2[0-3]):([0-5][0-9])(:([0-5][0-9]))?"
_TIME_RANGE = re.compile(_CLOCK + r"(~|-)" + _CLOCK)
_TIME = re.compile(_CLOCK)

_UNIT_NAMES = "%|°C|℃|度|摄氏度|cm2|cm²|cm3|cm³|cm|db|ds|kg|km|m2|m²|m³|m3|ml|m|mm|s"
_UNIT_RANGE = re.compile(rf"(-?{_NUM})({_UNIT_NAMES})~(-?{_NUM})({_UNIT_NAMES})")
_TEMPERATURE = re.compile(r"(-?)(\d+(?:\.\d+)?)(°C|℃|度|摄氏度)")
# Replaced as plain substrings, in this order (so 'm' shadows 'mm': 0.5mm -> 零点五米米).
_UNITS = (
    ("cm2", "平方厘米"), ("cm²", "平方厘米"), ("cm3", "立方厘米"), ("cm³", "立方厘米"), ("cm", "厘米"),
    ("db", "分贝"), ("ds", "毫秒"), ("kg", "千克"), ("km", "千米"), ("m2", "平方米"), ("m²", "平方米"),
    ("m³", "立方米"), ("m3", "立方米"), ("ml", "毫升"), ("m", "米"), ("mm", "毫米"), ("s", "秒"),
)  # fmt: skip

_OPERAND = rf"(?:-?\d+(?:\.\d+)?[{_SUP}]*|\.\d+[{_SUP}]*|[A-Za-z][{_SUP}]*)"
_ARITHMETIC = re.compile(rf"({_OPERAND})([+\-×÷=])({_OPERAND})")
_OPERATOR_NAMES = {"+": "加", "-": "减", "×": "乘", "÷": "除", "=": "等于"}
_POWER = re.compile(rf"[{_SUP}]+")
_SUP_TO_ASCII = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹ˣʸⁿ", "0123456789xyn")

_FRACTION = re.compile(r"(-?)(\d+)/(\d+)")
_PERCENT = re.compile(r"(-?)(\d+(?:\.\d+)?)%")
_MOBILE = re.compile(r"(?<!\d)((\+?86 ?)?1([38]\d|5[0-35-9]|7[678]|9[89])\d{8})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)((0(10|2[1-3]|[3-9]\d{2})-?)?[1-9]\d{6,7})(?!\d)")
_SERVICE_NUMBER = re.compile(r"(400)(-)?\d{3}(-)?\d{4}")
_RANGE = re.compile(r"(?<![\d+\-×÷=])(-?\d+(?:\.\d+)?)[-~](-?\d+(?:\.\d+)?)(?![\d+\-×÷=])")
_NEGATIVE = re.compile(r"-(\d+)")
_VERSION = re.compile(r"\d+\.\d+(?:\.\d+)?(?:\.\d+)+")
_DECIMAL = re.compile(r"(-?)(\d+\.\d+)|\.(\d+)")
_NUMBER = re.compile(r"(-?)(\d+(?:\.\d+)?)|\.(\d+)")
_LONG_DIGITS = re.compile(r"\d{3,}")

# Measure words after which a number is read as a cardinal (2个 -> 两个). Only whether one follows
# matters: the measure word itself is copied unchanged.
_MEASURE_CHARS = (
    "处台架枚趟幅平方堵间床株批项例列篇栋注亩封艘把目套段人所朵匹张座回场尾条个首阙阵网炮顶丘棵只支袭辆挑担颗壳窠"
    "曲墙群腔砣客贯扎捆刀令打手罗坡山岭江溪钟队单双对出口头脚板跳枝件贴针线管名位身堂课本页家户层丝毫厘分钱两斤铢石"
    "钧锱忽寸尺丈里寻常铺程米撮勺合升斗盘碗碟叠桶笼盆盒杯斛锅簋篮罐瓶壶卮盏箩箱煲啖袋钵年月日季刻时周天秒旬纪岁世更夜"
    "春夏秋冬代伏辈丸泡粒幢堆根道面片块元亿万千百吨角毛"
)
_MEASURE_WORDS = "微克|公分|小时|微米|美元|十吨"
_QUANTIFIED = re.compile(rf"(\d+)([多余几+])?({_MEASURE_WORDS}|[{_MEASURE_CHARS}])")

_CIRCLED = str.maketrans("①②③④⑤⑥⑦⑧⑨⑩", "一二三四五六七八九十")
_GREEK = (
    ("α", "阿尔法"), ("β", "贝塔"), ("γ", "伽玛"), ("Γ", "伽玛"), ("δ", "德尔塔"), ("Δ", "德尔塔"),
    ("ε", "艾普西龙"), ("ζ", "捷塔"), ("η", "依塔"), ("θ", "西塔"), ("Θ", "西塔"), ("ι", "艾欧塔"),
    ("κ", "喀帕"), ("λ", "拉姆达"), ("Λ", "拉姆达"), ("μ", "缪"), ("ν", "拗"), ("ξ", "克西"), ("Ξ", "克西"),
    ("ο", "欧米克伦"), ("π", "派"), ("Π", "派"), ("ρ", "肉"), ("ς", "西格玛"), ("Σ", "西格玛"), ("σ", "西格玛"),
    ("τ", "套"), ("υ", "宇普西龙"), ("φ", "服艾"), ("Φ", "服艾"), ("χ", "器"), ("ψ", "普赛"), ("Ψ", "普赛"),
    ("ω", "欧米伽"), ("Ω", "欧米伽"), ("+", "加"), ("-", "减"), ("×", "乘"), ("÷", "除"), ("=", "等"),
)  # fmt: skip
_POST_DELETE = re.compile(r"[-—《》【】<=>{}()（）#&@“”^_|\\]")

# Full-width ASCII letters and digits to half-width; the ideographic space to a space.
_FULL_TO_HALF = {c: c - 0xFEE0 for c in [*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B)]}
_FULL_TO_HALF[0x3000] = 0x20

# Step B: marks mapped to the 6 kept marks, then everything but CJK and those marks is dropped.
_MARK_MAP = {
    "：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",",
    "...": "…", "$": ".", "/": ",", "—": "-", "~": "…", "～": "…",
}  # fmt: skip
_MARK_RE = re.compile("|".join(re.escape(k) for k in _MARK_MAP))
_NOT_KEPT = re.compile(r"[^\u4e00-\u9fa5!?…,.\-]+")
_REPEATED_MARKS = re.compile(r"([!?…,.\-])[!?…,.\-]+")


@cache
def _traditional_to_simplified() -> dict[int, int]:
    """Character table traditional -> simplified, from OpenCC's TSCharacters (shipped with its wheel).

    Only ideographs of the basic CJK block on both sides, the range the rest of the frontend reads.
    """
    import opencc

    path = os.path.join(os.path.dirname(opencc.__file__), "dictionary", "TSCharacters.txt")
    table: dict[int, int] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2 or len(parts[0]) != 1 or len(parts[1]) != 1:
                continue
            src, dst = parts[0], parts[1]
            if "\u4e00" <= src <= "\u9fa5" and "\u4e00" <= dst <= "\u9fa5" and src != dst:
                table[ord(src)] = ord(dst)
    return table


def to_simplified(text: str) -> str:
    """Traditional -> simplified, character by character (the table above)."""
    return text.translate(_traditional_to_simplified())


def _date(m: re.Match) -> str:
    out = read_digits(m.group(1)) + "年"
    if m.group(3):
        out += read_cardinal(m.group(3)) + "月"
    if m.group(5):
        out += read_cardinal(m.group(5)) + m.group(9)
    return out


def _numeric_date(m: re.Match) -> str:
    return f"{read_digits(m.group(1))}年{read_cardinal(m.group(3))}月{read_cardinal(m.group(4))}日"


def _clock_part(digits: str) -> str:
    """Minutes/seconds: a written leading zero is read (06:05 -> 六点零五分)."""
    out = read_number(digits.lstrip("0"))
    return "零" + out if digits.startswith("0") else out


def _clock(hour: str, minute: str, second: str | None, half_minute: str) -> str:
    out = read_number(hour) + "点"
    if minute.lstrip("0"):
        # upstream decides 半 from `half_minute`, which for the 2nd time of a range is the 1st time's minutes
        out += "半" if int(half_minute) == 30 else _clock_part(minute) + "分"
    if second and second.lstrip("0"):
        out += _clock_part(second) + "秒"
    return out


def _time(m: re.Match) -> str:
    return _clock(m.group(1), m.group(2), m.group(4), m.group(2))


def _time_range(m: re.Match) -> str:
    first = _clock(m.group(1), m.group(2), m.group(4), m.group(2))
    return first + "至" + _clock(m.group(6), m.group(7), m.group(9), m.group(2))


def _temperature(m: re.Match) -> str:
    sign = "零下" if m.group(1) else ""
    unit = "摄氏度" if m.group(3) == "摄氏度" else "度"
    return sign + read_number(m.group(2)) + unit


def _signed(sign: str, number: str) -> str:
    return ("负" if sign else "") + read_number(number)


def _mobile(m: re.Match) -> str:
    return "，".join(read_digits(part, alt_one=True) for part in m.group(0).strip("+").split())


def _landline(m: re.Match) -> str:
    return "，".join(read_digits(part, alt_one=True) for part in m.group(0).split("-"))


def _range(m: re.Match) -> str:
    return _NUMBER.sub(_number, m.group(1)) + "到" + _NUMBER.sub(_number, m.group(2))


def _number(m: re.Match) -> str:
    if m.group(3) is not None:
        return read_number("." + m.group(3))
    return _signed(m.group(1), m.group(2))


def _quantified(m: re.Match) -> str:
    number = read_number(m.group(1))
    number = "两" if number == "二" else number
    extra = {"+": "多", None: ""}.get(m.group(2), m.group(2))
    return number + extra + m.group(3)


def _version(m: re.Match) -> str:
    return "".join("点" if c == "." else read_number(c) for c in m.group(0))


def _power(m: re.Match) -> str:
    return "的" + m.group(0).translate(_SUP_TO_ASCII) + "次方"


def _arithmetic(m: re.Match) -> str:
    return m.group(1) + _OPERATOR_NAMES[m.group(2)] + m.group(3)


def split_sentences(text: str) -> list[str]:
    text = _SPLIT_DELETE.sub("", text.replace(" ", ""))
    text = _SENTENCE_END.sub(r"\1\n", text).strip()
    return [s.strip() for s in re.split(r"\n+", text)]


def normalize_sentence(s: str) -> str:
    s = s.translate(_traditional_to_simplified()).translate(_FULL_TO_HALF)
    s = _DATE.sub(_date, s)
    s = _DATE_NUMERIC.sub(_numeric_date, s)
    s = _TIME_RANGE.sub(_time_range, s)
    s = _TIME.sub(_time, s)
    s = _UNIT_RANGE.sub(lambda m: m.group(0).replace("~", "至"), s)
    s = _TEMPERATURE.sub(_temperature, s)
    for unit, name in _UNITS:
        s = s.replace(unit, name)
    while _ARITHMETIC.search(s):
        s = _ARITHMETIC.sub(_arithmetic, s)
    s = _POWER.sub(_power, s)
    s = _FRACTION.sub(lambda m: ("负" if m.group(1) else "") + f"{read_number(m.group(3))}分之{read_number(m.group(2))}", s)
    s = _PERCENT.sub(lambda m: ("负" if m.group(1) else "") + "百分之" + read_number(m.group(2)), s)
    s = _MOBILE.sub(_mobile, s)
    s = _LANDLINE.sub(_landline, s)
    s = _SERVICE_NUMBER.sub(_landline, s)
    s = _RANGE.sub(_range, s)
    s = _NEGATIVE.sub(lambda m: "负" + read_number(m.group(1)), s)
    s = _VERSION.sub(_version, s)
    s = _DECIMAL.sub(_number, s)
    s = _QUANTIFIED.sub(_quantified, s)
    s = _LONG_DIGITS.sub(lambda m: read_digits(m.group(0), alt_one=True), s)
    s = _NUMBER.sub(_number, s)
    return _post_replace(s)


def _post_replace(s: str) -> str:
    s = s.replace("/", "每").translate(_CIRCLED)
    for src, dst in _GREEK:
        s = s.replace(src, dst)
    return _POST_DELETE.sub("", s)


def keep_marks(s: str) -> str:
    """Map marks to the 6 phone marks and drop everything that is not a CJK ideograph or one of them."""
    s = s.replace("嗯", "恩").replace("呣", "母")  # pypinyin gives these no final
    s = _MARK_RE.sub(lambda m: _MARK_MAP[m.group(0)], s)
    return _NOT_KEPT.sub("", s)


def collapse_marks(s: str) -> str:
    return _REPEATED_MARKS.sub(r"\1", s)


def normalize_zh(text: str) -> str:
    """Upstream chinese2.text_normalize: only CJK ideographs and `! ? … , . -` remain."""
    return collapse_marks("".join(keep_marks(normalize_sentence(s)) for s in split_sentences(text)))
