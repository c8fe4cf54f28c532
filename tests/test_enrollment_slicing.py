"""Slicing: a generated one-minute take -> 3-10 s clips on its sentences; reference selection."""

from __future__ import annotations

import numpy as np
import pytest
from enrollment_audio import needs_espeak

from engine.enrollment.decode import DecodedTake
from engine.enrollment.scripts import get_script
from engine.enrollment.slicing import (
    MAX_CLIP,
    MIN_CLIP,
    SlicingError,
    align_segments,
    select_clips,
    slice_sentence_take,
    split_long_take,
)
from engine.enrollment.vad import FRAME_SECONDS, Segment, speech_probabilities

pytest_plugins = ["enrollment_fixtures"]
pytestmark = needs_espeak


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


@pytest.mark.parametrize("take_fixture,script_id", [("en_long_take", "en-1"), ("zh_long_take", "zh-1")])
def test_a_one_minute_take_is_cut_into_its_sentences(request, take_fixture, script_id):
    samples, rate, spans = request.getfixturevalue(take_fixture)
    script = get_script(script_id)
    take = DecodedTake(samples, rate, 1, "WAV")
    probs = speech_probabilities(samples, rate)
    result = split_long_take(take, "t1", script.sentences, script.language, probs=probs, snr_db=40.0)
    assert result.rejected == [] and len(result.clips) == len(script.sentences)
    for clip in result.clips:
        assert MIN_CLIP <= clip.seconds <= MAX_CLIP
        best = max(range(len(spans)), key=lambda i: overlap((clip.start, clip.end), spans[i]))
        assert best == clip.sentence_index and clip.text == script.sentences[best]
        truth = spans[best]
        assert overlap((clip.start, clip.end), truth) >= 0.95 * (truth[1] - truth[0])
    speech = np.flatnonzero(probs >= 0.5)
    centres = (speech + 0.5) * FRAME_SECONDS
    covered = sum(any(c.start <= t <= c.end for c in result.clips) for t in centres)
    assert covered >= 0.95 * speech.size


def test_a_sentence_take_is_trimmed_to_its_speech(en_sentence):
    samples, rate, text = en_sentence
    take = DecodedTake(samples, rate, 1, "WAV")
    result = slice_sentence_take(take, "t2", 0, text)
    (clip,) = result.clips
    assert 0.3 < clip.start < 0.6 and clip.end < take.seconds - 0.3 and MIN_CLIP <= clip.seconds <= MAX_CLIP
    assert clip.flac_bytes()[:4] == b"fLaC"
    short = slice_sentence_take(DecodedTake(samples[: int(2.0 * rate)], rate, 1, "WAV"), "t3", 1, text)
    assert short.clips == [] and short.rejected[0].reason.startswith("shorter than")


def test_the_best_clip_becomes_the_reference_and_the_rest_the_dataset(en_long_take):
    samples, rate, _ = en_long_take
    script = get_script("en-1")
    clips = split_long_take(DecodedTake(samples, rate, 1, "WAV"), "t1", script.sentences, "en").clips
    clips[3].snr_db = 5.0  # one noisy clip must not win
    selection = select_clips(clips, "en")
    key = (selection.reference.take_id, selection.reference.sentence_index)
    assert selection.scores[key] == max(selection.scores.values()) and selection.reference is not clips[3]
    assert selection.holdout is not None and selection.holdout is not selection.reference
    assert len(selection.dataset) == len(clips) - 2
    assert selection.reference not in selection.dataset and selection.holdout not in selection.dataset
    names = {(c.take_id, c.sentence_index): f"clip{c.sentence_index}.flac" for c in clips}
    lines = selection.dataset_list("ann", "en", names).splitlines()
    assert len(lines) == len(selection.dataset) and lines[0].count("|") == 3 and "|ann|en|" in lines[0]


def test_too_few_pauses_for_the_sentences_is_an_error():
    with pytest.raises(SlicingError, match="2 stretches of speech but the script has 3 sentences"):
        align_segments([Segment(0, 3), Segment(4, 7)], [0.3, 0.3, 0.4])
    with pytest.raises(SlicingError, match="no usable"):
        select_clips([], "en")


def test_alignment_prefers_long_pauses_that_fit_the_expected_lengths():
    segs = [Segment(0, 2), Segment(2.1, 4), Segment(5, 7), Segment(7.1, 9)]  # long pause between 2 and 3
    assert align_segments(segs, [0.5, 0.5]) == [(0, 1), (2, 3)]
