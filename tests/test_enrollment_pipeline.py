"""The enrollment steps end to end on generated speech: one long take plus consent -> a ready voice."""

from __future__ import annotations

import numpy as np
import pytest
from enrollment_audio import OTHER, SPEAKER, needs_espeak, padded

from engine.enrollment import espeak
from engine.enrollment.pipeline import assess_take, finish_enrollment
from engine.enrollment.scripts import consent_text, get_script
from engine.enrollment.verify import Audio, ResemblyzerEmbedder

pytest_plugins = ["enrollment_fixtures"]
pytestmark = needs_espeak


def consent(voice: str) -> Audio:
    return Audio("consent", *espeak.say(consent_text("Ann", "en"), voice))


def test_one_long_take_and_consent_make_a_ready_voice(en_long_take):
    samples, rate, _ = en_long_take
    script = get_script("en-1")
    take = assess_take("long", espeak.wav_bytes(samples, rate), script, None)
    assert take.accepted and len(take.clips) == len(script.sentences), take.report.to_dict()
    outcome = finish_enrollment([take], consent(SPEAKER), script, ResemblyzerEmbedder())
    assert outcome.ready and outcome.messages == []
    sel = outcome.selection
    assert sel.holdout is not None and len(sel.dataset) == len(script.sentences) - 2
    assert 40 < outcome.clean_seconds < 70


def test_a_refused_take_gives_no_clips_and_a_second_voice_blocks_the_voice():
    script = get_script("en-1")
    quiet = assess_take("q", espeak.wav_bytes(np.zeros(22050 * 4, np.float32), 22050), script, 0)
    assert not quiet.accepted and quiet.clips == [] and "speech_ratio" in quiet.report.failed
    takes = [assess_take(f"t{i}", espeak.wav_bytes(padded(*espeak.say(script.sentences[i], voice)), 22050),
                         script, i) for i, voice in enumerate([SPEAKER, SPEAKER, SPEAKER, OTHER])]
    assert all(t.accepted for t in takes)
    outcome = finish_enrollment([quiet, *takes], consent(SPEAKER), script, ResemblyzerEmbedder())
    assert not outcome.ready and outcome.selection is None
    assert outcome.one_speaker.outliers == ["t3#3"] and "more than one voice" in outcome.messages[0]
    with pytest.raises(ValueError, match="no accepted take"):
        finish_enrollment([quiet], consent(SPEAKER), script, ResemblyzerEmbedder())
