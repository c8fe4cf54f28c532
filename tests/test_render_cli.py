"""`echodiary render` takes the road every job takes: a row in the job table, the embedded executor,
the worker's export (the job's watermark mark and AIGC label), and the voice's chunk cache."""

from __future__ import annotations

import json
from pathlib import Path

import jobs_fixtures
import numpy as np
import pytest
import soundfile as sf
from jobs_fixtures import audio_bytes, embedded_settings, run_cli

from shared import keys, service
from shared.tables import Job

DIARY = "今天我们去公园散步。天气很好。"
PROMPT = "今天天气很好。"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return jobs_fixtures.tiny_models(tmp_path_factory)


@pytest.fixture
def diary(tmp_data_dir) -> tuple[Path, Path]:
    reference, text = tmp_data_dir.parent / "me.wav", tmp_data_dir.parent / "today.txt"
    reference.write_bytes(audio_bytes(4.0))
    text.write_text(DIARY, encoding="utf-8")
    return reference, text


def _render(data_dir: Path, models: Path, diary: tuple[Path, Path], output: Path) -> str:
    reference, text = diary
    done = run_cli(data_dir, "render", str(text), "--voice", str(reference), "--prompt-text", PROMPT,
                   "-o", str(output), "--seed", "3", models=models)
    assert done.returncode == 0, done.stderr
    assert "chunks" in done.stderr and f"wrote {output}" in done.stderr  # the bar and summary: stderr
    job_id = done.stdout.strip()
    assert done.stdout == job_id + "\n" and keys.is_id(job_id)  # the job id, alone on stdout
    return job_id


def _row(data_dir: Path, job_id: str) -> Job:
    backend = service.open_backend(embedded_settings(data_dir))
    with backend.db.read() as session:
        return session.get(Job, job_id)


def _detect(data_dir: Path, *files: Path) -> list[dict]:
    done = run_cli(data_dir, "watermark", "detect", "--json", *map(str, files))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.strip().splitlines()]


def test_render_is_a_job_marked_and_labelled_like_a_submitted_one(tmp_data_dir, models, diary):
    rendered = tmp_data_dir.parent / "rendered.flac"
    render_id = _render(tmp_data_dir, models, diary, rendered)
    listed = run_cli(tmp_data_dir, "jobs").stdout.splitlines()
    assert any(line.startswith(render_id) and "synthesis" in line and "succeeded" in line for line in listed)
    assert any("enroll" in line and "succeeded" in line for line in listed)  # the voice came from a job too

    voices = json.loads(run_cli(tmp_data_dir, "voices", "--json").stdout)
    assert len(voices) == 1 and voices[0]["status"] == "ready"
    submitted = tmp_data_dir.parent / "submitted.flac"
    done = run_cli(tmp_data_dir, "submit", "--text", DIARY, "-v", voices[0]["voice_id"], "-f", "flac",
                   "-o", str(submitted), models=models)
    assert done.returncode == 0, done.stderr
    submit_id = done.stdout.strip()

    found = _detect(tmp_data_dir, rendered, submitted)
    for job_id, report in zip((render_id, submit_id), found, strict=True):
        row = _row(tmp_data_dir, job_id)
        assert row.kind == "synthesis" and row.status == "succeeded" and row.result_key
        assert report["mac_ok"] and report["payload"] == f"{row.mark:012x}"  # the job's own mark
        assert report["label"]["ProduceID"] == job_id and report["label_verified"] is True
    assert found[0]["payload"] != found[1]["payload"]


def test_a_second_render_reuses_the_voice_and_its_finished_chunks(tmp_data_dir, models, diary):
    first = _render(tmp_data_dir, models, diary, tmp_data_dir.parent / "first.wav")
    row = _row(tmp_data_dir, first)
    backend = service.open_backend(embedded_settings(tmp_data_dir))
    cached = backend.storage.list(keys.voice_prefix(row.member_id, row.voice_id) + "chunks/")
    assert len(cached) == row.progress_total >= 1
    # Replace the cached chunks by a 440 Hz tone: a render that reads the cache plays that tone.
    for key in cached:
        n = len(np.frombuffer(backend.storage.get(key), dtype="<f4"))
        tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 32000)
        backend.storage.put(key, tone.astype("<f4").tobytes())
    second = _render(tmp_data_dir, models, diary, tmp_data_dir.parent / "second.wav")
    assert second != first and _row(tmp_data_dir, second).voice_id == row.voice_id
    assert len(json.loads(run_cli(tmp_data_dir, "voices", "--json").stdout)) == 1

    def peak_hz(path: Path) -> float:
        audio, rate = sf.read(path, dtype="float32")
        spectrum = np.abs(np.fft.rfft(audio))
        return float(np.argmax(spectrum) * rate / len(audio))

    assert abs(peak_hz(tmp_data_dir.parent / "first.wav") - 440) > 5
    assert abs(peak_hz(tmp_data_dir.parent / "second.wav") - 440) < 2


def test_render_refuses_a_missing_recording_and_an_unknown_format_clearly(tmp_data_dir, models, diary):
    _, text = diary
    missing = run_cli(tmp_data_dir, "render", str(text), "--voice", "nope.wav", "--prompt-text", PROMPT,
                      "-o", "x.flac", models=models)
    assert missing.returncode == 1 and "error:" in missing.stderr and missing.stdout == ""
    bad = run_cli(tmp_data_dir, "render", str(text), "--voice", str(diary[0]), "--prompt-text", PROMPT,
                  "-o", "x.aiff", models=models)
    assert bad.returncode == 2 and "not supported" in bad.stderr
    assert "synthesis" not in run_cli(tmp_data_dir, "jobs").stdout
