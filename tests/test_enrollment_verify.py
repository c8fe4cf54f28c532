"""Speaker checks on generated speakers: consent accepted for the same voice, refused for another."""

from __future__ import annotations

import pytest
from enrollment_audio import OTHER, SPEAKER, needs_espeak

from engine.enrollment import espeak
from engine.enrollment.calibrate import equal_error_rate
from engine.enrollment.scripts import consent_text, get_script
from engine.enrollment.verify import (
    Audio,
    ERes2NetEmbedder,
    ResemblyzerEmbedder,
    ab_similarity,
    check_one_speaker,
    load_embedder,
    verify_consent,
    verify_enrolled_speaker,
)
from engine.features.speaker import write_random_speaker

pytestmark = needs_espeak


@pytest.fixture(scope="session")
def embedder() -> ResemblyzerEmbedder:
    return ResemblyzerEmbedder()


def read(voice: str, *indices: int) -> list[Audio]:
    sentences = get_script("en-1").sentences
    return [Audio(f"{voice}:{i}", *espeak.say(sentences[i], voice)) for i in indices]


@pytest.fixture(scope="session")
def takes() -> list[Audio]:
    return read(SPEAKER, 0, 1, 2, 3)


def consent(voice: str) -> Audio:
    return Audio("consent", *espeak.say(consent_text("Ann", "en"), voice))


def test_consent_from_the_same_speaker_is_accepted(embedder, takes):
    check = verify_consent(consent(SPEAKER), takes, embedder, "en")
    assert check.passed and check.score >= check.threshold and check.message is None
    assert check.model == "resemblyzer-0.1.4" and set(check.per_take) == {t.id for t in takes}
    assert check.to_dict()["threshold"] == embedder.threshold


def test_consent_from_another_speaker_is_refused(embedder, takes):
    check = verify_consent(consent(OTHER), takes, embedder, "zh")
    assert not check.passed and check.score < check.threshold
    assert check.message.startswith("同意声明的声音和录音不是同一个人：相似度 ")


def test_takes_from_several_speakers_are_refused(embedder, takes):
    same = check_one_speaker(takes, embedder, "en")
    assert same.passed and same.outliers == []
    mixed = check_one_speaker(takes + read(OTHER, 4), embedder, "en")
    assert not mixed.passed and mixed.outliers == [f"{OTHER}:4"]
    assert mixed.message.startswith("The takes hold more than one voice: 1 (")


def test_ab_similarity_is_higher_for_the_same_voice(embedder, takes):
    same = ab_similarity(takes[0], read(SPEAKER, 5)[0], embedder)
    other = ab_similarity(takes[0], read(OTHER, 5)[0], embedder)
    assert same["similarity"] > other["similarity"] and same["same_speaker"] and not other["same_speaker"]


def test_equal_error_rate_on_known_scores():
    eer, threshold = equal_error_rate([0.9, 0.8, 0.7, 0.95], [0.1, 0.2, 0.75, 0.3])
    assert eer == pytest.approx(0.25) and 0.7 <= threshold <= 0.75
    assert equal_error_rate([0.9, 0.8], [0.1, 0.2])[0] == 0.0


def test_the_v2pro_speaker_model_is_used_when_its_weights_exist(tmp_path, takes):
    assert load_embedder(tmp_path / "missing.ckpt").name == "resemblyzer-0.1.4"
    ckpt = write_random_speaker(tmp_path / "sv" / "pretrained_eres2netv2w24s4ep4.ckpt", size="tiny")
    chosen = load_embedder(ckpt)
    assert isinstance(chosen, ERes2NetEmbedder) and chosen.name == "eres2netv2w24s4ep4"
    vector = chosen.embed(takes[0].samples, takes[0].sample_rate)
    assert vector.shape == (32,) and abs(float((vector**2).sum()) - 1.0) < 1e-6


def test_new_recordings_of_the_enrolled_speaker_pass_and_another_speaker_is_named(embedder, takes):
    enrolled = [takes[0], consent(SPEAKER)]
    calmer = Audio("calm", *espeak.say(get_script("en-1").sentences[5], SPEAKER, speed=140, pitch=35))
    same = verify_enrolled_speaker([calmer, *read(SPEAKER, 6)], enrolled, embedder, "zh")
    assert same.passed and same.score >= same.threshold and same.message is None
    mixed = verify_enrolled_speaker([calmer, *read(OTHER, 6)], enrolled, embedder, "zh")
    assert not mixed.passed and mixed.outliers == [f"{OTHER}:6"]
    assert mixed.score == mixed.per_take[f"{OTHER}:6"] < mixed.threshold
    assert mixed.message.startswith("这段录音和这个声音录入时不是同一个人")
