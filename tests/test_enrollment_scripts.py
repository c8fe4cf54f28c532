"""Reading scripts: sentence counts and lengths, v2 phone coverage, the consent statement."""

from __future__ import annotations

import datetime as dt

import pytest
from enrollment_audio import needs_espeak

from engine.enrollment import espeak
from engine.enrollment.scripts import (
    UnknownScript,
    consent_text,
    get_script,
    language_symbols,
    list_scripts,
    phone_coverage,
    script_coverage,
)

# Honest floors just under what the shipped scripts reach (zh 0.63 / toneless 0.94, en 0.72 / 1.0,
# mixed zh 0.52 / 0.89 and en 0.55 / 0.82): a weaker script edit fails here.
FLOORS = {"zh-1": {"zh": (0.60, 0.92)}, "en-1": {"en": (0.70, 0.97)},
          "mix-1": {"zh": (0.50, 0.85), "en": (0.50, 0.80)}}


def test_three_scripts_ship_with_their_languages():
    scripts = {s.id: s for s in list_scripts()}
    assert set(scripts) == {"zh-1", "en-1", "mix-1"}
    assert (scripts["zh-1"].language, scripts["en-1"].language, scripts["mix-1"].language) == ("zh", "en", "zh")
    assert scripts["en-1"].message_language == "en" and scripts["mix-1"].message_language == "zh"
    for script in scripts.values():
        assert 10 <= len(script.sentences) <= 16


def test_unknown_script_names_the_known_ones():
    with pytest.raises(UnknownScript, match="zh-1"):
        get_script("nope")


@pytest.mark.parametrize("script_id", ["zh-1", "en-1", "mix-1"])
def test_coverage_is_reported_and_above_its_floor(script_id):
    coverage = script_coverage(get_script(script_id))
    assert set(coverage) == set(FLOORS[script_id])
    for lang, (floor, toneless_floor) in FLOORS[script_id].items():
        c = coverage[lang]
        assert c.total == len(language_symbols(lang)) and 0 < c.reached <= c.total
        assert c.fraction >= floor and c.toneless_fraction >= toneless_floor, c.to_dict()
        assert c.to_dict()["fraction"] == round(c.reached / c.total, 4)


def test_coverage_counts_only_the_languages_symbols():
    zh = language_symbols("zh")
    assert {"zh", "ang4", "i01", "AA"} <= zh and not {"AH0", "by", "Yaa1", "ㄱ"} & zh
    assert {"AH0", "NG", "ZH"} <= language_symbols("en") and "a1" not in language_symbols("en")
    c = phone_coverage({"b", "a1", "a2", "AH0", ","}, "zh")
    assert (c.reached, c.toneless_reached) == (3, 2)


@needs_espeak
@pytest.mark.parametrize("script_id", ["zh-1", "en-1", "mix-1"])
def test_each_sentence_reads_in_3_to_8_s_and_the_script_in_about_a_minute(script_id):
    script = get_script(script_id)
    voice = espeak.voice_for(script.language)
    seconds = [len(s) / r for s, r in (espeak.say(t, voice) for t in script.sentences)]
    assert all(3.0 <= s <= 8.0 for s in seconds), seconds
    assert 45 <= sum(seconds) <= 95  # espeak's Mandarin is slower than a person (85 s for zh-1)


def test_consent_text_names_the_member_and_the_date():
    day = dt.date(2026, 12, 2)
    zh = consent_text("王小明", "zh", day)
    assert zh.startswith("我是王小明，今天是2026年12月2日。我同意 EchoDiary 用我的声音")
    en = consent_text("Ann Lee", "en", day)
    assert en.startswith("I am Ann Lee, and today is December 2, 2026. I agree that EchoDiary may use my voice")
    with pytest.raises(ValueError, match="name"):
        consent_text("  ", "zh", day)
    with pytest.raises(ValueError, match="consent"):
        consent_text("Ann", "fr", day)
