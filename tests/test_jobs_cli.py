"""The command line: members, the embedded mode end to end, and clear refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jobs_fixtures
import pytest
import soundfile as sf
from jobs_fixtures import audio_bytes, embedded_settings

from shared import service

REPO = Path(__file__).resolve().parents[1]


def run_cli(data_dir: Path, *args: str, models: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHODIARY_")}
    env.update(ECHODIARY_DATA_DIR=str(data_dir), ECHODIARY_DEVICE="cpu", ECHODIARY_THREADS="1",
               ECHODIARY_ALLOW_LEGACY_VOICES="true")  # `voices add` makes one-clip voices, without consent
    if models is not None:
        env["ECHODIARY_MODELS_DIR"] = str(models)
    return subprocess.run([sys.executable, "-m", "producer.cli", *args], cwd=data_dir.parent, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_members_add_prints_the_token_alone_and_once(tmp_data_dir):
    made = run_cli(tmp_data_dir, "members", "add", "ann", "--admin")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert made.stdout == token + "\n" and token.startswith("edy_") and len(token) > 40
    backend = service.open_backend(embedded_settings(tmp_data_dir))
    member = service.authenticate(backend, token)
    assert member is not None and member.name == "ann" and member.is_admin
    again = run_cli(tmp_data_dir, "members", "add", "ann")
    assert again.returncode == 1 and again.stdout == "" and "already exists" in again.stderr


def test_worker_and_flower_explain_that_the_embedded_mode_needs_none(tmp_data_dir):
    for command in ("worker", "flower"):
        done = run_cli(tmp_data_dir, command)
        assert done.returncode == 2 and "ECHODIARY_BROKER_URL" in done.stderr


def test_submit_refuses_an_unknown_voice_clearly(tmp_data_dir):
    done = run_cli(tmp_data_dir, "submit", "--text", "今天。", "--voice", "0" * 32)
    assert done.returncode == 1 and "not found" in done.stderr and done.stdout == ""


def test_the_embedded_mode_enrolls_and_renders_in_process(tmp_data_dir, tiny_models_for_cli):
    reference = tmp_data_dir.parent / "me.wav"
    reference.write_bytes(audio_bytes(4.0))
    added = run_cli(tmp_data_dir, "voices", "add", str(reference), "-t", "今天天气很好。", models=tiny_models_for_cli)
    assert added.returncode == 0, added.stderr
    voice_id = added.stdout.strip()
    out = tmp_data_dir.parent / "today.flac"
    submitted = run_cli(tmp_data_dir, "submit", "--text", "今天我们去公园散步。天气很好。", "-v", voice_id,
                        "-f", "flac", "-o", str(out), models=tiny_models_for_cli)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    audio, rate = sf.read(out)
    assert rate == 32000 and len(audio) > 0
    listed = run_cli(tmp_data_dir, "jobs")
    assert job_id in listed.stdout and "succeeded" in listed.stdout


@pytest.fixture(scope="module")
def tiny_models_for_cli(tmp_path_factory) -> Path:
    return jobs_fixtures.tiny_models(tmp_path_factory)
