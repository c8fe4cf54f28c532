"""Reading scripts shipped as data, their v2 phone coverage, and the consent statement text."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from engine.text._data import symbols_v2
from engine.text.phonemize import phonemize

SCRIPT_LANGUAGES = ("zh", "en")

# v2 table members per language (the table also holds Japanese, Korean and Cantonese symbols).
_ZH_INITIALS = frozenset(
    "b c ch d f g h j k l m n p q r s sh t w x y z zh AA EE OO".split()
)  # AA/EE/OO: upstream's zero-initial markers
_ZH_TONAL = re.compile(r"^(?:[a-z]+0?|E|En)[1-5]$")
_EN_CONSONANTS = frozenset("B CH D DH F G HH JH K L M N NG P R S SH T TH V W Y Z ZH".split())
_EN_VOWEL = re.compile(r"^(?:AA|AE|AH|AO|AW|AY|EH|ER|EY|IH|IY|OW|OY|UH|UW)[0-2]$")


class UnknownScript(LookupError):
    """No shipped script has this id."""


@dataclass(frozen=True)
class Script:
    """One reading script: id, phonemizer language ("zh" reads embedded English as English), sentences."""

    id: str
    language: str
    title: str
    sentences: tuple[str, ...]

    @property
    def message_language(self) -> str:
        """Language of the messages a member reading this script gets ("zh" or "en")."""
        return "en" if self.language == "en" else "zh"


@dataclass(frozen=True)
class Coverage:
    """Fraction of a language's v2 symbols a text reaches; ``toneless`` ignores tone/stress digits."""

    language: str
    reached: int
    total: int
    toneless_reached: int
    toneless_total: int

    @property
    def fraction(self) -> float:
        return self.reached / self.total

    @property
    def toneless_fraction(self) -> float:
        return self.toneless_reached / self.toneless_total

    def to_dict(self) -> dict[str, object]:
        return {
            "language": self.language, "reached": self.reached, "total": self.total,
            "fraction": round(self.fraction, 4), "toneless_reached": self.toneless_reached,
            "toneless_total": self.toneless_total, "toneless_fraction": round(self.toneless_fraction, 4),
        }


@cache
def _all_scripts() -> dict[str, Script]:
    raw = resources.files("engine.enrollment").joinpath("data", "scripts.json").read_text(encoding="utf-8")
    return {
        sid: Script(sid, body["language"], body["title"], tuple(body["sentences"]))
        for sid, body in json.loads(raw).items()
    }


def list_scripts() -> list[Script]:
    return list(_all_scripts().values())


def get_script(script_id: str) -> Script:
    try:
        return _all_scripts()[script_id]
    except KeyError:
        known = ", ".join(_all_scripts())
        raise UnknownScript(f"unknown script {script_id!r}; the scripts are: {known}") from None


@cache
def language_symbols(language: str) -> frozenset[str]:
    """The v2 symbols of one language ("zh" or "en")."""
    if language == "zh":
        return frozenset(s for s in symbols_v2() if s in _ZH_INITIALS or _ZH_TONAL.match(s))
    if language == "en":
        return frozenset(s for s in symbols_v2() if s in _EN_CONSONANTS or _EN_VOWEL.match(s))
    raise ValueError(f"no phone inventory for {language!r}; use 'zh' or 'en'")


def _toneless(symbol: str) -> str:
    return re.sub(r"[0-5]$", "", symbol)


def sentence_phones(text: str, language: str) -> list[str]:
    """v2 phones of one sentence with our own frontend (punctuation included)."""
    return phonemize(text, language)[0]


def phone_coverage(phones: set[str] | frozenset[str], language: str) -> Coverage:
    """How much of ``language``'s v2 symbol set (and of its toneless phones) ``phones`` reaches."""
    inventory = language_symbols(language)
    reached = set(phones) & inventory
    toneless = {_toneless(s) for s in inventory}
    return Coverage(language, len(reached), len(inventory), len({_toneless(s) for s in reached}), len(toneless))


def script_coverage(script: Script) -> dict[str, Coverage]:
    """Coverage per language the script speaks: {"zh": ...} or {"en": ...}, both for a mixed script."""
    phones = {p for sentence in script.sentences for p in sentence_phones(sentence, script.language)}
    languages = ["en"] if script.language == "en" else ["zh"]
    if script.language != "en" and phones & language_symbols("en"):
        languages.append("en")
    return {lang: phone_coverage(phones, lang) for lang in languages}


_CONSENT = {
    "zh": (
        "我是{name}，今天是{date}。我同意 EchoDiary 用我的声音为我的家庭日记合成语音。"
        "我确认这是我本人的声音，并且知道每一段合成的音频都带有水印和人工智能生成的标记。"
    ),
    "en": (
        "I am {name}, and today is {date}. I agree that EchoDiary may use my voice to read my family diary "
        "aloud. I confirm that this is my own voice, and I know that every generated recording carries a "
        "watermark and an AI-generated label."
    ),
}


def consent_text(name: str, language: str, date: dt.date | None = None) -> str:
    """The consent statement the member reads aloud, naming them and the date."""
    if language not in _CONSENT:
        raise ValueError(f"no consent statement in {language!r}; use 'zh' or 'en'")
    name = name.strip()
    if not name:
        raise ValueError("the consent statement needs the member's name")
    day = date or dt.date.today()
    shown = f"{day.year}年{day.month}月{day.day}日" if language == "zh" else day.strftime("%B %-d, %Y")
    return _CONSENT[language].format(name=name, date=shown)
