"""Guided enrollment through the HTTP API on tiny random models and generated speech (espeak-ng).

The app runs embedded (SQLite, storage folder, jobs in the API process) with legacy one-clip voices
not allowed, as a fresh install has it: a voice is usable only with a verified consent recording.
"""

from __future__ import annotations

import io
from pathlib import Path

import jobs_fixtures
import numpy as np
import pytest
import soundfile as sf
from enrollment_audio import OTHER, SPEAKER, needs_espeak
from fastapi.testclient import TestClient
from jobs_fixtures import audio_bytes, embedded_settings, wait_until
from sqlalchemy import select

from engine.enrollment import espeak
from engine.enrollment.scripts import get_script
from producer.api import create_app
from shared import consent, enrollment, service
from shared.tables import READY, EnrollmentSession, Job, Voice

pytest_plugins = ["enrollment_fixtures"]
pytestmark = needs_espeak


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return jobs_fixtures.tiny_models(tmp_path_factory)


class Api:
    def __init__(self, data_dir: Path, models: Path) -> None:
        self.settings = embedded_settings(data_dir, models_dir=models, device="cpu", threads=1,
                                          allow_legacy_voices=False, sweep_interval_s=0.5)
        self.app = create_app(self.settings)
        self.client = TestClient(self.app)
        self.backend = self.app.state.backend
        self.member, token = service.create_member(self.backend, "ann", admin=True)
        self.auth = {"Authorization": f"Bearer {token}"}

    def start(self, script: str = "en-1", **extra) -> dict:  # noqa: ANN003
        r = self.client.post("/v1/enrollments", json={"script_id": script, "voice_name": "me",
                                                      "accept_notice": True, **extra}, headers=self.auth)
        assert r.status_code == 201, r.text
        return r.json()

    def put(self, path: str, data: bytes):  # noqa: ANN201 - httpx.Response
        return self.client.put(path, files={"audio": ("take.wav", data)}, headers=self.auth)

    def finished(self, job_id: str, timeout: float = 300) -> dict:
        def done():  # noqa: ANN202
            job = self.client.get(f"/v1/jobs/{job_id}", headers=self.auth).json()
            return job if job["status"] not in ("queued", "running") else None

        return wait_until(done, timeout, 0.2, f"job {job_id}")

    def stored(self) -> list[str]:
        return self.backend.storage.list("members/")


@pytest.fixture
def api(tmp_data_dir, models):
    a = Api(tmp_data_dir, models)
    with a.client:
        yield a


def spoken(text: str, voice: str) -> bytes:
    samples, rate = espeak.say(text, voice)
    pad = np.zeros(int(0.5 * rate), np.float32)
    return espeak.wav_bytes(np.concatenate([pad, samples, pad]), rate)


def test_a_session_needs_the_accepted_notice_and_a_known_script(api):
    r = api.client.post("/v1/enrollments", json={"script_id": "en-1", "voice_name": "me", "accept_notice": False},
                        headers=api.auth)
    assert r.status_code == 403 and "only your own voice" in r.json()["detail"].lower()
    r = api.client.post("/v1/enrollments", json={"script_id": "xx-9", "voice_name": "me", "accept_notice": True},
                        headers=api.auth)
    assert r.status_code == 404 and "en-1" in r.json()["detail"]
    body = api.start("zh-1")
    assert body["status"] == "open" and body["language"] == "zh" and "我是ann" in body["statement"]
    assert "水印" in body["notice"] and body["missing_sentences"] == list(range(1, 15))
    assert body["can_finish"] is False and body["consent_recorded"] is False


def test_a_bad_take_is_refused_with_its_gate_message_and_not_kept(api):
    session = api.start()
    silence = espeak.wav_bytes(np.zeros(22050 * 4, np.float32), 22050)
    r = api.put(f"/v1/enrollments/{session['enrollment_id']}/takes/1", silence)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["messages"] and body["detail"] == " ".join(body["messages"])
    assert "speech_ratio" in body["report"]["failed"]
    assert any(g["name"] == "speech_ratio" and g["passed"] is False for g in body["report"]["gates"])
    assert api.stored() == []
    view = api.client.get(f"/v1/enrollments/{session['enrollment_id']}", headers=api.auth).json()
    assert view["takes"] == [] and view["missing_sentences"][0] == 1
    assert api.put(f"/v1/enrollments/{session['enrollment_id']}/takes/15", silence).status_code == 422
    r = api.put(f"/v1/enrollments/{session['enrollment_id']}/takes/0", silence)
    assert r.status_code == 422 and "from 1" in r.json()["detail"]


def test_the_thresholds_the_page_draws_are_the_ones_a_take_is_gated_with(api):
    limits = api.client.get("/v1/enrollments/thresholds", headers=api.auth)
    assert limits.status_code == 200, limits.text
    session = api.start()
    silence = espeak.wav_bytes(np.zeros(22050 * 4, np.float32), 22050)
    sentence = api.put(f"/v1/enrollments/{session['enrollment_id']}/takes/1", silence).json()
    consent = api.put(f"/v1/enrollments/{session['enrollment_id']}/consent", silence).json()
    assert limits.json()["sentence"] == sentence["report"]["thresholds"]
    assert limits.json()["consent"] == consent["report"]["thresholds"]
    assert limits.json()["sentence"]["max_seconds"] < limits.json()["whole_script"]["max_seconds"]


def test_one_long_take_and_consent_make_a_ready_voice_usable_and_fully_deletable(api, en_long_take):
    samples, rate, _ = en_long_take
    script = get_script("en-1")
    session = api.start()
    sid = session["enrollment_id"]
    r = api.put(f"/v1/enrollments/{sid}/takes/all", espeak.wav_bytes(samples, rate))
    assert r.status_code == 201, r.text
    take = r.json()
    assert take["status"] == "accepted" and take["kind"] == "whole_script"
    assert [c["sentence"] for c in take["clips"]] == list(range(1, len(script.sentences) + 1))
    assert all(3 <= c["seconds"] <= 10 for c in take["clips"])
    r = api.client.post(f"/v1/enrollments/{sid}/finish", headers=api.auth)
    assert r.status_code == 409 and "consent statement" in r.json()["detail"]

    r = api.put(f"/v1/enrollments/{sid}/consent", spoken(session["statement"], SPEAKER))
    assert r.status_code == 201 and r.json()["kind"] == "consent", r.text
    view = api.client.get(f"/v1/enrollments/{sid}", headers=api.auth).json()
    assert view["missing_sentences"] == [] and view["consent_recorded"] and view["can_finish"]

    r = api.client.post(f"/v1/enrollments/{sid}/finish", headers=api.auth)
    assert r.status_code == 202, r.text
    voice_id = r.json()["voice_id"]
    job = api.finished(r.json()["job_id"])
    assert job["status"] == "succeeded", job["error"]
    voice = api.client.get(f"/v1/voices/{voice_id}", headers=api.auth).json()
    assert voice["status"] == "ready" and voice["transcript"] in script.sentences

    consent = api.client.get(f"/v1/voices/{voice_id}/consent", headers=api.auth).json()
    assert consent["consent"] == "verified" and consent["usable"]
    assert consent["score"] >= consent["threshold"] and consent["model"].startswith("resemblyzer")
    assert consent["statement"] == session["statement"] and consent["one_speaker"]["passed"]
    assert consent["dataset_clips"] == len(script.sentences) - 2 and consent["holdout"]["text"] in script.sentences
    ab = consent["holdout"]  # the A/B pair: the member's recording of the held-out sentence, and its synthesis
    assert ab["model"] == consent["model"] and -1 <= ab["similarity"] <= 1 and isinstance(ab["same_speaker"], bool)
    recording = api.client.get(consent["ab_recording_url"].removeprefix(api.settings.api_url))
    synthesis = api.client.get(consent["ab_synthesis_url"].removeprefix(api.settings.api_url))
    assert recording.status_code == synthesis.status_code == 200
    assert abs(sf.info(io.BytesIO(recording.content)).duration - ab["seconds"]) < 0.01
    assert sf.info(io.BytesIO(synthesis.content)).duration > 0.3
    found = api.client.post("/v1/watermark/detect", files={"audio": ("b.flac", synthesis.content)}, headers=api.auth)
    assert found.json()["mine"] and found.json()["job_id"] == job["job_id"]  # watermarked like every output
    objects = api.stored()
    prefix = f"members/{api.member.id}/voices/{voice_id}/"
    assert {prefix + "reference.audio", prefix + "profile.safetensors", prefix + "consent.audio",
            prefix + "dataset/list.txt", prefix + "ab/recording.flac", prefix + "ab/synthesis.flac"} <= set(objects)
    assert len([k for k in objects if k.startswith(prefix + "dataset/") and k.endswith(".flac")]) == 12
    assert not [k for k in objects if "/enrollments/" in k]  # the takes became the voice's clips
    listing = api.backend.storage.get(prefix + "dataset/list.txt").decode().splitlines()
    assert len(listing) == 12 and all(line.split("|")[3] in script.sentences for line in listing)

    queued = api.client.post("/v1/syntheses", json={"text": "Hello there.", "voice_id": voice_id,
                                                     "text_lang": "en"}, headers=api.auth)
    assert queued.status_code == 202, queued.text
    assert api.finished(queued.json()["job_id"])["status"] == "succeeded"

    before = api.stored()
    kept_chunks = [k for k in before if k.startswith(prefix + "chunks/")]  # embedded: chunks kept with the voice
    assert kept_chunks and len(before) == len(objects) + 1 + len(kept_chunks)  # + the synthesis result
    confirm = api.client.delete(f"/v1/voices/{voice_id}", headers=api.auth).json()["confirm"]
    deleted = api.client.delete(f"/v1/voices/{voice_id}", params={"confirm": confirm}, headers=api.auth).json()
    assert deleted["objects_deleted"] == len(before)
    assert api.stored() == []
    assert api.client.get(f"/v1/voices/{voice_id}/consent", headers=api.auth).status_code == 404


def test_a_consent_in_another_voice_fails_the_finish_and_reopens_the_session(api):
    script = get_script("en-1")
    session = api.start()
    sid = session["enrollment_id"]
    for i in range(3):
        r = api.put(f"/v1/enrollments/{sid}/takes/{i + 1}", spoken(script.sentences[i], SPEAKER))
        assert r.status_code == 201, r.text
    again = api.put(f"/v1/enrollments/{sid}/takes/2", spoken(script.sentences[1], SPEAKER))
    assert again.status_code == 201
    view = api.client.get(f"/v1/enrollments/{sid}", headers=api.auth).json()
    assert [t["sentence"] for t in view["takes"]] == [1, 2, 3]  # the re-record replaced take 2
    assert view["takes"][1]["take_id"] == again.json()["take_id"]
    assert len([k for k in api.stored() if "/takes/" in k]) == 3

    assert api.put(f"/v1/enrollments/{sid}/consent", spoken(session["statement"], OTHER)).status_code == 201
    r = api.client.post(f"/v1/enrollments/{sid}/finish", headers=api.auth)
    job = api.finished(r.json()["job_id"])
    assert job["status"] == "failed" and "consent" in job["error"].lower()
    view = api.client.get(f"/v1/enrollments/{sid}", headers=api.auth).json()
    assert view["status"] == "open" and view["error"] == job["error"]
    voice = api.client.get(f"/v1/voices/{r.json()['voice_id']}", headers=api.auth).json()
    assert voice["status"] == "failed"
    refused = api.client.post("/v1/syntheses", json={"text": "Hi.", "voice_id": voice["voice_id"]}, headers=api.auth)
    assert refused.status_code == 409


def test_a_voice_without_consent_cannot_synthesise_or_fine_tune(api):
    r = api.client.post("/v1/voices", files={"audio": ("me.wav", audio_bytes(4.0))},
                        data={"transcript": "今天天气很好。", "language": "zh", "name": "me"}, headers=api.auth)
    assert r.status_code == 403 and "consent" in r.json()["detail"]
    # A voice made by the one-clip upload before guided enrollment existed: ready, but no consent.
    voice = Voice(member_id=api.member.id, name="old", language="zh", transcript="今天天气很好。", status=READY,
                  profile_key="members/x/profile", profile_bytes=1)
    with api.backend.db.write() as session:
        session.add(voice)
    r = api.client.post("/v1/syntheses", json={"text": "今天天气很好。", "voice_id": voice.id}, headers=api.auth)
    assert r.status_code == 403
    assert r.json()["detail"].startswith(f"voice {voice.id} has no verified consent, so it cannot be used for synthesis")
    r = api.client.post(f"/v1/voices/{voice.id}/finetune", json={}, headers=api.auth)
    assert r.status_code == 403 and "fine-tuning" in r.json()["detail"]
    assert api.client.get(f"/v1/voices/{voice.id}/consent", headers=api.auth).json()["consent"] == "missing"


def test_an_abandoned_session_expires_and_its_audio_is_deleted(api):
    script = get_script("en-1")
    sid = api.start()["enrollment_id"]
    assert api.put(f"/v1/enrollments/{sid}/takes/1", spoken(script.sentences[0], SPEAKER)).status_code == 201
    assert len(api.stored()) == 1
    assert consent.expire_sessions(api.backend.db, api.backend.storage) == 0
    with api.backend.db.write() as session:
        row = session.get(EnrollmentSession, sid)
        row.expires_at = 1.0
        session.add(row)
    service.cleanup_expired(api.backend)  # the sweep's housekeeping
    assert api.stored() == []
    view = api.client.get(f"/v1/enrollments/{sid}", headers=api.auth).json()
    assert view["status"] == "expired" and view["takes"] == []
    r = api.put(f"/v1/enrollments/{sid}/takes/1", spoken(script.sentences[0], SPEAKER))
    assert r.status_code == 409 and "expired" in r.json()["detail"]


def test_in_server_mode_a_take_is_analysed_by_a_cpu_queue_job(tmp_data_dir):
    """The server path of add_take (no in-process assessor): a job on the cpu queue, run here by a
    publisher that hands it to run_job in a thread, as a Celery worker would."""
    import threading

    from worker.runner import run_job

    published = []

    def publish(dispatch) -> None:  # noqa: ANN001 - job_state.Dispatch
        published.append(dispatch)
        threading.Thread(target=run_job, args=(backend, dispatch.job_id), daemon=True).start()

    backend = service.open_backend(embedded_settings(tmp_data_dir, allow_legacy_voices=False), publish)
    member, _ = service.create_member(backend, "ann")
    script = get_script("en-1")
    facts = enrollment.ScriptFacts(script.id, script.language, script.message_language, script.sentences)
    row = enrollment.start_session(backend, member, facts, "me", True, "I am ann.", "en")
    take = enrollment.add_take(backend, member, row.id, 0, spoken(script.sentences[0], SPEAKER), None)
    assert take.status == "accepted" and [c["sentence_index"] for c in take.clips] == [0]
    assert [(d.kind, d.queue) for d in published] == [("enroll", "cpu")]
    silence = espeak.wav_bytes(np.zeros(22050 * 4, np.float32), 22050)
    with pytest.raises(enrollment.TakeRefused) as refused:
        enrollment.add_take(backend, member, row.id, 1, silence, None)
    assert "speech_ratio" in refused.value.assessment.report["failed"]
    assert backend.storage.list("members/") == [take.audio_key]  # the refused take's audio is gone
    with backend.db.read() as session:
        jobs = session.exec(select(Job.status)).scalars().all()
    assert jobs == ["succeeded", "succeeded"]


def test_a_cancelled_finish_hands_the_session_back(tmp_data_dir):
    from worker import enrollment as work

    published = []
    settings = embedded_settings(tmp_data_dir, allow_legacy_voices=False)
    backend = service.open_backend(settings, published.append)  # no worker: the finish job stays queued
    member, _ = service.create_member(backend, "ann")
    script = get_script("en-1")
    statement = "I am Ann, and I agree that EchoDiary may use my voice."
    row = enrollment.start_session(backend, member, work.script_facts("en-1"), "me", True, statement, "en")
    for i in range(3):
        enrollment.add_take(backend, member, row.id, i, spoken(script.sentences[i], SPEAKER), work.assessor(settings))
    enrollment.add_take(backend, member, row.id, -2, spoken(statement, SPEAKER), work.assessor(settings))
    finishing, job = enrollment.finish_session(backend, member, row.id)
    assert finishing.status == "finishing" and [d.job_id for d in published] == [job.id]
    with pytest.raises(service.Conflict, match="finishing"):
        enrollment.add_take(backend, member, row.id, 3, spoken(script.sentences[3], SPEAKER), work.assessor(settings))
    service.cancel_job(backend, member, job.id)
    reopened, takes = enrollment.get_session(backend, member, row.id)
    assert reopened.status == "open" and "cancelled" in reopened.error and len(takes) == 4
    again, second = enrollment.finish_session(backend, member, row.id)
    assert again.voice_id == finishing.voice_id and second.id != job.id  # the same voice row, a new job
