"""After enrollment, through the HTTP API (embedded) on tiny models and generated speech (espeak-ng):
styles (personas) checked against the enrolled speaker, more samples for a ready voice, fine-tuning
on every dataset clip, session audio in the storage quota, and a voice deleted with all of it.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from enrollment_audio import OTHER, SPEAKER, needs_espeak
from test_enrollment_api import Api, api, models, spoken  # noqa: F401 - the fixtures, shared

from engine.enrollment import espeak
from engine.enrollment.scripts import get_script
from shared import service
from shared.tables import EnrollmentSession

pytestmark = needs_espeak
SCRIPT = get_script("en-1")


def enroll_voice(api: Api) -> str:  # noqa: F811 - Api, the fixture's class
    """A ready voice from three sentences and the consent statement (the smallest enrollment)."""
    session = api.start()
    sid = session["enrollment_id"]
    for i in range(3):
        assert api.put(f"/v1/enrollments/{sid}/takes/{i + 1}", spoken(SCRIPT.sentences[i], SPEAKER)).status_code == 201
    assert api.put(f"/v1/enrollments/{sid}/consent", spoken(session["statement"], SPEAKER)).status_code == 201
    finish = api.client.post(f"/v1/enrollments/{sid}/finish", headers=api.auth).json()
    assert api.finished(finish["job_id"])["status"] == "succeeded"
    return finish["voice_id"]


def styled(text: str, voice: str) -> bytes:
    """The same espeak speaker read slower and lower: a calmer style of the same voice."""
    samples, rate = espeak.say(text, voice, speed=140, pitch=35)
    pad = np.zeros(int(0.5 * rate), np.float32)
    return espeak.wav_bytes(np.concatenate([pad, samples, pad]), rate)


def add_style(api: Api, voice_id: str, name: str, voice: str = SPEAKER, sentence: int = 5):  # noqa: ANN201, F811
    text = SCRIPT.sentences[sentence]
    return api.client.post(f"/v1/voices/{voice_id}/styles", files={"audio": ("s.wav", styled(text, voice))},
                           data={"name": name, "transcript": text}, headers=api.auth)


def render(api: Api, voice_id: str, **extra) -> np.ndarray:  # noqa: ANN003, F811
    queued = api.client.post("/v1/syntheses", json={"text": "Hello there.", "voice_id": voice_id, "text_lang": "en",
                                                     "format": "wav", "seed": 3, **extra}, headers=api.auth)
    assert queued.status_code == 202, queued.text
    job = api.finished(queued.json()["job_id"])
    assert job["status"] == "succeeded", job["error"]
    data = api.client.get(job["result"]["url"].removeprefix(api.settings.api_url)).content
    return sf.read(io.BytesIO(data), dtype="float32")[0]


OPENAI_MODEL = "gpt-4o-mini-tts"


def openai_params(api: Api, fields: dict) -> dict:  # noqa: F811
    """The parameters the job of an OpenAI-compatible speech request was queued with."""
    from shared.tables import Job

    r = api.client.post("/v1/audio/speech", json={"model": OPENAI_MODEL, "input": "Hi.", "response_format": "wav",
                                                  **fields}, headers=api.auth)
    assert r.status_code == 200, r.text
    with api.backend.db.read() as session:
        return session.get(Job, r.headers["X-Job-Id"]).params


def openai_style(api: Api, fields: dict) -> str | None:  # noqa: F811
    return openai_params(api, fields).get("style")


def style_keys(api: Api) -> list[str]:  # noqa: F811
    return [k for k in api.stored() if "/styles/" in k]


def test_a_style_of_the_enrolled_speaker_is_kept_and_syntheses_read_in_it(api):  # noqa: F811
    api.settings.watermark = False  # the payload differs per job; this test compares renders of separate jobs
    voice_id = enroll_voice(api)
    r = add_style(api, voice_id, "温柔")
    assert r.status_code == 201, r.text
    style = r.json()
    assert style["status"] == "ready" and style["score"] >= style["threshold"] and style["model"].startswith("resemblyzer")
    assert len(style_keys(api)) == 2  # its reference and its profile
    again = add_style(api, voice_id, "温柔")
    assert again.status_code == 409 and "already has a style" in again.json()["detail"]

    other = add_style(api, voice_id, "冒充", voice=OTHER)
    assert other.status_code == 422
    assert "not the speaker this voice was enrolled with" in other.json()["detail"]
    assert len(style_keys(api)) == 2  # nothing of the refused one was kept
    listed = api.client.get(f"/v1/voices/{voice_id}/styles", headers=api.auth).json()
    assert [(s["name"], s["default"]) for s in listed] == [("enrollment", True), ("温柔", False)]

    plain, gentle = render(api, voice_id), render(api, voice_id, style="温柔")
    assert not np.array_equal(plain, gentle)  # another reference: another sound, same seed and text
    r = api.client.put(f"/v1/voices/{voice_id}/styles/default", json={"name": "温柔"}, headers=api.auth)
    assert [s["name"] for s in r.json() if s["default"]] == ["温柔"]
    details = api.client.get(f"/v1/voices/{voice_id}", headers=api.auth).json()
    assert details["default_style"] == "温柔" and details["styles"] == ["enrollment", "温柔"]
    assert np.array_equal(render(api, voice_id), gentle)  # no style named: the default one
    assert np.array_equal(render(api, voice_id, style="enrollment"), plain)
    unknown = api.client.post("/v1/syntheses", json={"text": "Hi.", "voice_id": voice_id, "style": "愤怒"},
                              headers=api.auth)
    assert unknown.status_code == 422 and "its styles: enrollment, 温柔" in unknown.json()["detail"]
    # OpenAI's voice:style and instructions naming a style; None is the enrollment reference
    assert openai_style(api, {"voice": "me:enrollment"}) is None
    assert openai_style(api, {"voice": "me", "instructions": " enrollment "}) is None
    assert openai_style(api, {"voice": "me", "instructions": "speak warmly"}) == "温柔"  # other text: the default
    # no language in OpenAI's requests: a date line a detector calls Japanese is read as Chinese
    assert openai_params(api, {"voice": "me", "input": "2024年5月2日，晴。"})["text_lang"] == "zh"
    assert openai_params(api, {"voice": "me", "input": "A quiet day."})["text_lang"] == "en"
    refused = api.client.post("/v1/audio/speech", json={"model": OPENAI_MODEL, "input": "Hi.", "voice": "me:愤怒"},
                              headers=api.auth)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "voice"
    assert "its styles: enrollment, 温柔" in refused.json()["error"]["message"]

    deleted = api.client.delete(f"/v1/voices/{voice_id}/styles/温柔", headers=api.auth).json()
    assert deleted["objects_deleted"] == 2 and style_keys(api) == []
    details = api.client.get(f"/v1/voices/{voice_id}", headers=api.auth).json()
    assert details["default_style"] == "enrollment" and details["styles"] == ["enrollment"]


def test_more_samples_grow_the_dataset_that_fine_tuning_trains_on_and_deleting_leaves_nothing(api):  # noqa: F811
    voice_id = enroll_voice(api)
    details = api.client.get(f"/v1/voices/{voice_id}", headers=api.auth).json()
    minutes, clips = details["clean_speech_minutes"], details["dataset_clips"]
    assert clips == 1 and 0 < minutes < 1  # three clips: the reference, the A/B hold-out, one to train on
    assert details["finetune_ready"] is False and f"you have {minutes:.2f}" in details["finetune_note"]
    api.settings.finetune_min_minutes = round(minutes + 0.05, 2)  # more than it has, less than it will have
    refused = api.client.post(f"/v1/voices/{voice_id}/finetune", json={"sovits_epochs": 1, "gpt_epochs": 1},
                              headers=api.auth)
    assert refused.status_code == 409
    assert f"fine-tuning needs at least {api.settings.finetune_min_minutes:g} minutes" in refused.json()["detail"]

    other = api.start(voice_id=voice_id)["enrollment_id"]  # someone else's takes cannot join this voice
    assert api.put(f"/v1/enrollments/{other}/takes/4", spoken(SCRIPT.sentences[3], OTHER)).status_code == 201
    job = api.finished(api.client.post(f"/v1/enrollments/{other}/finish", headers=api.auth).json()["job_id"])
    assert job["status"] == "failed" and "not the speaker this voice was enrolled with" in job["error"]
    assert api.client.get(f"/v1/voices/{voice_id}", headers=api.auth).json()["status"] == "ready"

    more = api.start(voice_id=voice_id)
    assert more["extends_voice"] and more["voice_id"] == voice_id
    for i in (3, 4, 5):
        assert api.put(f"/v1/enrollments/{more['enrollment_id']}/takes/{i + 1}",
                       spoken(SCRIPT.sentences[i], SPEAKER)).status_code == 201
    job = api.finished(api.client.post(f"/v1/enrollments/{more['enrollment_id']}/finish", headers=api.auth)
                       .json()["job_id"])
    assert job["status"] == "succeeded", job["error"]
    grown = api.client.get(f"/v1/voices/{voice_id}", headers=api.auth).json()
    assert grown["dataset_clips"] == 4 and grown["clean_speech_minutes"] > minutes and grown["finetune_ready"]
    prefix = f"members/{api.member.id}/voices/{voice_id}/dataset/"
    first = api.backend.storage.get(prefix + "list.txt").decode().splitlines()
    added = api.backend.storage.get(f"{prefix}{more['enrollment_id']}/list.txt").decode().splitlines()
    assert len(first) == 1 and {line.split("|")[3] for line in added} == set(SCRIPT.sentences[3:6])
    assert all(api.backend.storage.exists(line.split("|")[0]) for line in first + added)

    tuned = api.client.post(f"/v1/voices/{voice_id}/finetune", json={"sovits_epochs": 1, "gpt_epochs": 1},
                            headers=api.auth)
    assert tuned.status_code == 202, tuned.text
    job = api.finished(tuned.json()["job_id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"]["total"] == 4 * 2  # every dataset clip, one epoch of each stage
    assert api.client.get(f"/v1/voices/{voice_id}", headers=api.auth).json()["finetuned"]

    assert add_style(api, voice_id, "平静").status_code == 201
    pending = api.start(voice_id=voice_id)["enrollment_id"]  # an open session's take, still unfinished
    assert api.put(f"/v1/enrollments/{pending}/takes/7", spoken(SCRIPT.sentences[6], SPEAKER)).status_code == 201
    before = api.stored()
    assert any("/finetune/" in k for k in before) and any("/styles/" in k for k in before)
    assert any(f"/enrollments/{pending}/" in k for k in before)
    confirm = api.client.delete(f"/v1/voices/{voice_id}", headers=api.auth).json()["confirm"]
    deleted = api.client.delete(f"/v1/voices/{voice_id}", params={"confirm": confirm}, headers=api.auth).json()
    assert deleted["objects_deleted"] == len(before)
    assert api.stored() == []
    assert api.client.get(f"/v1/enrollments/{pending}", headers=api.auth).status_code == 404


def test_takes_of_open_sessions_count_in_the_storage_quota_until_they_expire(api):  # noqa: F811
    take = spoken(SCRIPT.sentences[0], SPEAKER)
    api.settings.quota_storage_bytes = len(take) + 1000  # room for one take
    sid = api.start()["enrollment_id"]
    assert api.put(f"/v1/enrollments/{sid}/takes/1", take).status_code == 201
    full = api.put(f"/v1/enrollments/{sid}/takes/2", spoken(SCRIPT.sentences[1], SPEAKER))
    assert full.status_code == 403 and f"storage is full ({len(take)} of" in full.json()["detail"]
    assert api.client.put(f"/v1/enrollments/{sid}/consent", files={"audio": ("c.wav", take)},
                          headers=api.auth).status_code == 403

    with api.backend.db.write() as session:  # the session is abandoned: its expiry passes
        row = session.get(EnrollmentSession, sid)
        row.expires_at = 1.0
        session.add(row)
    service.cleanup_expired(api.backend)
    assert api.stored() == []
    fresh = api.start()["enrollment_id"]
    assert api.put(f"/v1/enrollments/{fresh}/takes/1", take).status_code == 201  # the space is free again


@pytest.mark.parametrize("name", ["enrollment", "a/b", "voice:style", ""])
def test_a_style_name_must_be_usable_in_paths_and_voice_names(api, name):  # noqa: F811
    voice_id = "0" * 32
    r = api.client.post(f"/v1/voices/{voice_id}/styles", files={"audio": ("s.wav", spoken("Hello.", SPEAKER))},
                        data={"name": name, "transcript": "Hello."}, headers=api.auth)
    assert r.status_code in (409, 422) and ("name" in r.json()["detail"] or "enrollment" in r.json()["detail"])
