"""`echodiary enroll` in the embedded mode (in-process), and the enrollment client over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import jobs_fixtures
import numpy as np
import pytest
from enrollment_audio import SPEAKER, needs_espeak
from fastapi.testclient import TestClient
from jobs_fixtures import embedded_settings
from typer.testing import CliRunner

from engine.enrollment import espeak
from engine.enrollment.scripts import consent_text, get_script
from producer.api import create_app
from producer.cli import app
from producer.client import ApiError, Client
from producer.enrollment_client import TakeRefusedError, enrollment_for
from shared import service
from shared.settings import get_settings

pytest_plugins = ["enrollment_fixtures"]
pytestmark = needs_espeak


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return jobs_fixtures.tiny_models(tmp_path_factory)


@pytest.fixture
def cli_env(tmp_path, monkeypatch, models):
    for name, value in {"DATA_DIR": str(tmp_path / "data"), "MODELS_DIR": str(models), "DEVICE": "cpu",
                        "THREADS": "1"}.items():
        monkeypatch.setenv(f"ECHODIARY_{name}", value)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def spoken(path: Path, text: str, voice: str = SPEAKER) -> Path:
    samples, rate = espeak.say(text, voice)
    pad = np.zeros(int(0.5 * rate), np.float32)
    path.write_bytes(espeak.wav_bytes(np.concatenate([pad, samples, pad]), rate))
    return path


def enroll(*args: str):  # noqa: ANN201 - click.testing.Result
    return CliRunner().invoke(app, ["enroll", *args])


def test_scripts_and_the_consent_text(cli_env):
    listed = enroll("scripts")
    assert listed.exit_code == 0, listed.output
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["zh-1", "en-1", "mix-1"]
    shown = enroll("scripts", "en-1")
    assert shown.stdout.splitlines() == list(get_script("en-1").sentences)
    assert enroll("scripts", "xx-9").exit_code == 1
    text = enroll("consent-text", "--language", "en")
    assert text.exit_code == 0 and text.stdout.strip() == consent_text("owner", "en")


def test_step_by_step_a_refused_take_exits_1_with_the_gate_message(cli_env):
    started = enroll("start", "--script", "en-1", "--name", "me", "--yes")
    assert started.exit_code == 0, started.output
    session_id = started.stdout.strip()
    assert "only your own voice" in started.stderr.lower() and "I am owner" in started.stderr
    silent = cli_env / "silent.wav"
    silent.write_bytes(espeak.wav_bytes(np.zeros(22050 * 4, np.float32), 22050))
    refused = enroll("take", session_id, "1", str(silent))
    assert refused.exit_code == 1 and refused.stderr.startswith("refused: ")
    good = enroll("take", session_id, "1", str(spoken(cli_env / "one.wav", get_script("en-1").sentences[0])))
    assert good.exit_code == 0 and "sentence 1: accepted" in good.stderr, good.output
    status = enroll("status", session_id)
    assert "missing sentences: " + " ".join(map(str, range(2, 15))) in status.stdout
    assert "consent: missing" in status.stdout
    unfinished = enroll("finish", session_id)
    assert unfinished.exit_code == 1 and "consent statement" in unfinished.stderr


def test_one_shot_enrollment_makes_a_ready_voice_or_exits_1(cli_env, en_long_take):
    samples, rate, _ = en_long_take
    minute = cli_env / "minute.wav"
    minute.write_bytes(espeak.wav_bytes(samples, rate))
    consent = spoken(cli_env / "consent.wav", consent_text("owner", "en"))
    quiet = cli_env / "quiet.wav"
    quiet.write_bytes(espeak.wav_bytes(samples * 0.003, rate))
    refused = enroll(str(quiet), "--script", "en-1", "--consent", str(consent), "--name", "me", "--yes")
    assert refused.exit_code == 1 and refused.stdout == ""
    assert "\nrefused: " in refused.stderr and "Too quiet: loudness" in refused.stderr

    done = enroll(str(minute), "--script", "en-1", "--consent", str(consent), "--name", "me", "--yes")
    assert done.exit_code == 0, done.output
    voice_id = done.stdout.strip()
    assert f"voice {voice_id} ready: consent verified" in done.stderr
    voices = CliRunner().invoke(app, ["voices", "--json"])
    assert [(v["voice_id"], v["status"]) for v in json.loads(voices.stdout)] == [(voice_id, "ready")]


def test_the_http_client_starts_a_session_and_sees_refusals(tmp_data_dir):
    settings = embedded_settings(tmp_data_dir, allow_legacy_voices=False)
    api = create_app(settings)
    with TestClient(api, base_url="http://test") as http:
        _, token = service.create_member(api.state.backend, "ann", admin=True)
        client = enrollment_for(Client("http://test", token, http=http))
        assert [s.script_id for s in client.scripts()] == ["zh-1", "en-1", "mix-1"]
        assert client.consent_text("en").statement.startswith("I am ann")
        with pytest.raises(ApiError) as refused:
            client.start("en-1", "me", accept_notice=False)
        assert refused.value.status == 403
        session = client.start("en-1", "me", accept_notice=True)
        silent = espeak.wav_bytes(np.zeros(22050 * 4, np.float32), 22050)
        with pytest.raises(TakeRefusedError) as bad:
            client.put_take(session.enrollment_id, 1, silent)
        assert bad.value.messages and "speech_ratio" in bad.value.report["failed"]
        samples, rate = espeak.say(get_script("en-1").sentences[2], SPEAKER)
        take = client.put_take(session.enrollment_id, 3, espeak.wav_bytes(samples, rate))
        assert take.status == "accepted" and [c.sentence for c in take.clips] == [3]
        view = client.session(session.enrollment_id)
        assert [t.take_id for t in view.takes] == [take.take_id] and 3 not in view.missing_sentences


def test_styles_and_more_samples_from_the_command_line(cli_env):
    from enrollment_audio import OTHER
    from test_enrollment_styles import styled

    sentences = get_script("en-1").sentences
    session_id = enroll("start", "--script", "en-1", "--name", "me", "--yes").stdout.strip()
    for i in range(3):
        assert enroll("take", session_id, str(i + 1), str(spoken(cli_env / f"{i}.wav", sentences[i]))).exit_code == 0
    assert enroll("consent", session_id, str(spoken(cli_env / "c.wav", consent_text("owner", "en")))).exit_code == 0
    done = enroll("finish", session_id)
    assert done.exit_code == 0, done.output
    voice_id = done.stdout.strip()
    assert "fine-tuning needs at least 1 minutes of clean speech; you have 0." in done.stderr

    def style(*args: str):  # noqa: ANN202 - click.testing.Result
        return CliRunner().invoke(app, ["voices", "style", *args])

    gentle = cli_env / "gentle.wav"
    gentle.write_bytes(styled(sentences[5], SPEAKER))
    added = style("add", voice_id, "温柔", str(gentle), "-t", sentences[5])
    assert added.exit_code == 0 and added.stdout.strip() == "温柔" and "same speaker" in added.stderr, added.output
    other = cli_env / "other.wav"
    other.write_bytes(styled(sentences[5], OTHER))
    refused = style("add", voice_id, "冒充", str(other), "-t", sentences[5])
    assert refused.exit_code == 1 and "not the speaker this voice was enrolled with" in refused.stderr
    assert [line.split("\t")[0] for line in style("list", voice_id).stdout.splitlines()] == ["* enrollment", "  温柔"]
    assert [line.split("\t")[0] for line in style("default", voice_id, "温柔").stdout.splitlines()] == [
        "  enrollment", "* 温柔"]

    more = enroll("start", "--script", "en-1", "--voice", voice_id, "--yes")
    assert more.exit_code == 0 and f"adding samples to voice {voice_id}" in more.stderr
    more_id = more.stdout.strip()
    assert enroll("take", more_id, "4", str(spoken(cli_env / "4.wav", sentences[3]))).exit_code == 0
    assert f"adds samples to voice {voice_id}" in enroll("status", more_id).stdout
    assert enroll("finish", more_id).exit_code == 0
    details = json.loads(CliRunner().invoke(app, ["voices", "show", voice_id]).stdout)
    assert details["dataset_clips"] == 2 and details["default_style"] == "温柔"
    spoken_in = CliRunner().invoke(app, ["submit", "--text", "Hello.", "--voice", voice_id, "--lang", "en",
                                         "--style", "温柔"])
    assert spoken_in.exit_code == 0, spoken_in.output
    unknown = CliRunner().invoke(app, ["submit", "--text", "Hello.", "--voice", voice_id, "--style", "愤怒"])
    assert unknown.exit_code == 1 and "its styles: enrollment, 温柔" in unknown.stderr
    removed = style("rm", voice_id, "温柔")
    assert removed.exit_code == 0 and "2 files" in removed.stderr
    assert style("list", voice_id).stdout.startswith("* enrollment")


def test_the_http_client_reaches_the_style_routes(tmp_data_dir):
    settings = embedded_settings(tmp_data_dir, allow_legacy_voices=False)
    api = create_app(settings)
    with TestClient(api, base_url="http://test") as http:
        _, token = service.create_member(api.state.backend, "ann", admin=True)
        client = enrollment_for(Client("http://test", token, http=http))
        missing = "0" * 32
        samples, rate = espeak.say(get_script("en-1").sentences[2], SPEAKER)
        for call in (lambda: client.add_style(missing, "温柔", espeak.wav_bytes(samples, rate), "text"),
                     lambda: client.styles(missing), lambda: client.set_default_style(missing, "温柔"),
                     lambda: client.delete_style(missing, "温柔")):
            with pytest.raises(ApiError) as refused:
                call()
            assert refused.value.status == 404 and f"voice {missing} not found" in refused.value.detail
        with pytest.raises(ApiError) as bad:
            client.start("en-1", "me", accept_notice=True, voice_id=missing)
        assert bad.value.status == 404
