"""The worker's export and the API's detect, end to end through engine.export and engine.watermark.

A rendered result (here: synthetic speech standing in for the engine's float output) is exported
the way the worker stores it; the stored bytes must carry the job's mark and its AIGC label.
"""

from __future__ import annotations

import pytest

from engine.export import read_label, verify_label
from engine.watermark import load_keyring
from ops.bench.watermark import synthetic_speech
from shared.settings import Settings
from worker import pipeline

SR = 32000


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("data"), explicit_label="rhythm")


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3"])
def test_stored_result_carries_the_jobs_mark_and_label(settings, fmt):
    mark, job_id = 0x5EED_0000_0001 + len(fmt), "0123456789abcdef0123456789abcdef"
    data = pipeline.export(settings, synthetic_speech(15.0, seed=len(fmt)), SR, fmt, mark, job_id)
    found = pipeline.detect(settings, data)
    assert found.present and found.mac_ok and found.mark == mark
    assert found.false_positive_bound < 1e-6
    label = read_label(data)
    assert label.produce_id == job_id and label.label == "1"
    assert verify_label(data, load_keyring(settings.data_dir))


def test_marking_off_by_setting_leaves_no_mark(settings):
    off = settings.model_copy(update={"watermark": False})
    data = pipeline.export(off, synthetic_speech(15.0, seed=1), SR, "wav", 12345, "0" * 32)
    found = pipeline.detect(settings, data)
    assert not found.present and found.mark is None
    assert read_label(data).produce_id == "0" * 32  # the metadata label is written regardless


def test_c2pa_setting_signs_the_stored_result_and_keeps_the_mark(settings):
    from engine.watermark import c2pa

    signed = settings.model_copy(update={"c2pa": True})
    data = pipeline.export(signed, synthetic_speech(15.0, seed=2), SR, "flac", 77, "1" * 32)
    manifest = c2pa.read(data)
    assert manifest["validation_state"] == "Valid" and "c2pa.watermarked" in manifest["actions"]
    assert pipeline.detect(settings, data).mark == 77
    assert c2pa.read(pipeline.export(settings, synthetic_speech(15.0, seed=2), SR, "flac", 77, "1" * 32)) is None
