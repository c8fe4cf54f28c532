"""`echodiary say` and `echodiary submit --follow` in the embedded mode, through the CLI itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import jobs_fixtures
import numpy as np
import pytest
from jobs_fixtures import audio_bytes, run_cli

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="decoding streamed FLAC needs ffmpeg")


@pytest.fixture(scope="module")
def tiny_models_for_cli(tmp_path_factory):
    return jobs_fixtures.tiny_models(tmp_path_factory)


@pytest.fixture
def voice(tmp_data_dir, tiny_models_for_cli) -> str:
    reference = tmp_data_dir.parent / "me.wav"
    reference.write_bytes(audio_bytes(4.0))
    added = run_cli(tmp_data_dir, "voices", "add", str(reference), "-t", "今天天气很好。", models=tiny_models_for_cli)
    assert added.returncode == 0, added.stderr
    return added.stdout.strip()


def _stored(tmp_data_dir, tiny_models, job_id: str, fmt: str) -> bytes:
    path = tmp_data_dir.parent / f"stored.{fmt}"
    done = run_cli(tmp_data_dir, "download", job_id, "-o", str(path), models=tiny_models)
    assert done.returncode == 0, done.stderr
    return path.read_bytes()


def samples(data: bytes) -> np.ndarray:
    """Decoded samples (ffmpeg: a streamed FLAC's header does not know its length yet, libsndfile needs it)."""
    done = subprocess.run(["ffmpeg", "-v", "error", "-i", "-", "-f", "f32le", "-ac", "1", "-"], input=data,
                          capture_output=True, check=True)
    return np.frombuffer(done.stdout, np.float32)


def _until_empty(blocks):  # noqa: ANN001, ANN202
    for block in blocks:
        if not len(block):
            return
        yield block


def test_say_writes_the_streamed_audio_to_a_file_and_to_a_pipe(tmp_data_dir, tiny_models_for_cli, voice):
    out = tmp_data_dir.parent / "said.wav"
    said = run_cli(tmp_data_dir, "say", "今天天气很好。", "--voice", voice, "--out", str(out), models=tiny_models_for_cli)
    assert said.returncode == 0, said.stderr
    job_id = said.stderr.split("job ", 1)[1].split()[0]
    assert np.array_equal(samples(out.read_bytes()), samples(_stored(tmp_data_dir, tiny_models_for_cli, job_id, "wav")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHODIARY_")}
    env.update(ECHODIARY_DATA_DIR=str(tmp_data_dir), ECHODIARY_DEVICE="cpu", ECHODIARY_THREADS="1",
               ECHODIARY_MODELS_DIR=str(tiny_models_for_cli), ECHODIARY_ALLOW_LEGACY_VOICES="true")
    piped = subprocess.run([sys.executable, "-m", "producer.cli", "say", "晚上看书。", "-v", voice, "-f", "flac"],
                           cwd=tmp_data_dir.parent, env=env, capture_output=True, timeout=300)
    assert piped.returncode == 0, piped.stderr.decode()
    assert piped.stdout[:4] == b"fLaC" and len(samples(piped.stdout)) > 0  # stdout is a pipe: the bytes go there
    unknown = run_cli(tmp_data_dir, "say", "你好。", "--voice", "nobody", models=tiny_models_for_cli)
    assert unknown.returncode == 1 and "no voice of yours is called 'nobody'" in unknown.stderr


def test_submit_follow_streams_a_diary_into_its_output(tmp_data_dir, tiny_models_for_cli, voice):
    out = tmp_data_dir.parent / "diary.wav"
    diary = "".join(f"第{i}句，今天我们去公园散步。" for i in range(5))
    done = run_cli(tmp_data_dir, "submit", "--text", diary, "-v", voice, "--follow", "-o", str(out),
                   models=tiny_models_for_cli)
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    assert f"saved {out}" in done.stderr
    stored = _stored(tmp_data_dir, tiny_models_for_cli, job_id, "wav")
    assert np.array_equal(samples(out.read_bytes()), samples(stored)) and stored.endswith(out.read_bytes()[44:])
