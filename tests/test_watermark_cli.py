"""`echodiary watermark ...` commands against a real keyring in a temporary data folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from engine.export import export_audio
from engine.watermark import load_keyring, pack_payload
from ops.bench.watermark import synthetic_speech
from producer.cli import app
from shared.settings import get_settings

SR = 32000


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ECHODIARY_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def test_embed_then_detect_json_names_the_payload(tmp_path, data_dir):
    source = tmp_path / "plain.wav"
    sf.write(source, synthetic_speech(12.0, seed=9), SR)
    runner = CliRunner()
    out = runner.invoke(app, ["watermark", "embed", str(source), str(tmp_path / "m.mp3"), "--payload", "0a1b2c3d4e5f"])
    assert out.exit_code == 0, out.output
    assert (data_dir / "watermark" / "keys.json").exists()  # the key is made on first use
    out = runner.invoke(app, ["watermark", "detect", "--json", str(tmp_path / "m.mp3"), str(source)])
    assert out.exit_code == 0, out.output
    marked, plain = (json.loads(line) for line in out.output.strip().splitlines())
    assert marked["present"] and marked["mac_ok"] and marked["payload"] == "0a1b2c3d4e5f"
    assert marked["false_positive_bound"] < 1e-6 and marked["key_id"] == load_keyring(data_dir).primary_id
    assert not plain["present"] and plain["payload"] is None and plain["label"] is None
    for key in ("present", "payload", "mac_ok", "z", "false_positive_bound"):
        assert key in plain


def test_detect_reports_the_aigc_label_and_its_verification(tmp_path, data_dir):
    ring = load_keyring(data_dir)
    path = tmp_path / "job.flac"
    path.write_bytes(export_audio(synthetic_speech(12.0, seed=4), SR, "flac", loudness_lufs=-20.0, keyring=ring,
                                  payload=pack_payload(42), label="job-42"))
    out = CliRunner().invoke(app, ["watermark", "detect", "--json", str(path)])
    result = json.loads(out.output)
    assert result["payload"] == f"{42:012x}"
    assert result["label"]["ProduceID"] == "job-42" and result["label_verified"] is True
    human = CliRunner().invoke(app, ["watermark", "detect", str(path)])
    assert "payload 00000000002a" in human.output and "ProduceID=job-42 (verified)" in human.output


def test_bad_payload_and_unreadable_files_fail_clearly(tmp_path, data_dir):
    source = tmp_path / "a.wav"
    sf.write(source, np.zeros(SR), SR)
    runner = CliRunner()
    out = runner.invoke(app, ["watermark", "embed", str(source), str(tmp_path / "b.wav"), "--payload", "xyz"])
    assert out.exit_code == 2
    out = runner.invoke(app, ["watermark", "embed", str(source), str(tmp_path / "b.wav"),
                              "--payload", "1234567890abcd"])
    assert out.exit_code == 2
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio")
    out = runner.invoke(app, ["watermark", "detect", "--json", str(junk), str(source)])
    assert out.exit_code == 1
    lines = [json.loads(line) for line in out.output.strip().splitlines()]
    assert "error" in lines[0] and lines[1]["present"] is False


def test_rotate_and_keys(data_dir):
    runner = CliRunner()
    first = load_keyring(data_dir).primary_id
    out = runner.invoke(app, ["watermark", "rotate"])
    assert out.exit_code == 0
    ring = load_keyring(data_dir)
    assert ring.primary_id != first and ring.primary_id in out.output
    listing = runner.invoke(app, ["watermark", "keys"]).output
    assert f"{ring.primary_id}  primary" in listing and f"{first}  active" in listing
