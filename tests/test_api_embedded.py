"""The API on a bare machine: no broker, SQLite, a storage folder, jobs run in the API process."""

from __future__ import annotations

import time
from pathlib import Path

import jobs_fixtures
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from jobs_fixtures import audio_bytes, embedded_settings, wait_until

from producer.api import create_app
from shared import service

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return jobs_fixtures.tiny_models(tmp_path_factory)


def finished(client: TestClient, auth: dict, job_id: str, timeout: float = 180) -> dict:
    """The job's JSON once it has left queued/running (jobs run in the API process here)."""

    def done():  # noqa: ANN202
        job = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
        return job if job["status"] not in ("queued", "running") else None

    return wait_until(done, timeout, 0.2, f"job {job_id}")


def test_upload_synthesize_and_download_through_a_signed_local_link(tmp_data_dir, models):
    settings = embedded_settings(tmp_data_dir, models_dir=models, device="cpu", threads=1, sweep_interval_s=0.5)
    app = create_app(settings)
    with TestClient(app) as client:
        _, token = service.create_member(app.state.backend, "me", admin=True)
        auth = {"Authorization": f"Bearer {token}"}

        created = client.post("/v1/voices", files={"audio": ("me.flac", audio_bytes(4.0, fmt="FLAC"))},
                              data={"transcript": "今天天气很好。", "language": "zh", "name": "me"}, headers=auth)
        assert created.status_code == 202, created.text
        assert finished(client, auth, created.json()["job_id"])["status"] == "succeeded"
        queued = client.post("/v1/syntheses", json={"text": "我们去公园散步吧。", "voice_id": created.json()["voice_id"],
                                                    "format": "flac", "seed": 3}, headers=auth)
        job = finished(client, auth, queued.json()["job_id"])
        assert job["status"] == "succeeded" and job["progress"]["done"] == job["progress"]["total"] >= 1
        link = job["result"]["url"]
        assert link.startswith(settings.api_url + "/v1/files/")
        response = client.get(link.removeprefix(settings.api_url))
        assert response.status_code == 200 and response.headers["content-type"] == "audio/flac"
        tmp = tmp_data_dir.parent / "out.flac"
        tmp.write_bytes(response.content)
        audio, rate = sf.read(tmp)
        assert rate == 32000 and abs(len(audio) / rate - job["result"]["duration_s"]) < 0.05
        # The link is a capability for that one file, and it expires.
        assert client.get(link.removeprefix(settings.api_url).replace("result.flac", "result.wav")).status_code == 403
        assert job["result"]["expires_at"] > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


def test_a_fine_tuned_voice_renders_with_its_own_weights(tmp_data_dir, models):
    import io

    import numpy as np

    from worker import pipeline

    # No watermark: its payload differs per job, and this test compares renders of separate jobs.
    settings = embedded_settings(tmp_data_dir, models_dir=models, device="cpu", threads=1, watermark=False)
    app = create_app(settings)
    with TestClient(app) as client:
        _, token = service.create_member(app.state.backend, "me", admin=True)
        auth = {"Authorization": f"Bearer {token}"}

        def render() -> np.ndarray:
            queued = client.post("/v1/syntheses", json={"text": "我们去公园散步吧。", "voice_id": voice_id,
                                                        "format": "wav", "seed": 3}, headers=auth)
            job = finished(client, auth, queued.json()["job_id"], timeout=300)
            assert job["status"] == "succeeded", job
            data = client.get(job["result"]["url"].removeprefix(settings.api_url)).content
            return sf.read(io.BytesIO(data), dtype="float32")[0]

        created = client.post("/v1/voices", files={"audio": ("me.wav", audio_bytes(4.0))},
                              data={"transcript": "今天天气很好。", "language": "zh", "name": "me"}, headers=auth)
        voice_id = created.json()["voice_id"]
        assert finished(client, auth, created.json()["job_id"], timeout=300)["status"] == "succeeded"
        before = render()

        tuned = client.post(f"/v1/voices/{voice_id}/finetune", json={"sovits_epochs": 1, "gpt_epochs": 1},
                            headers=auth)
        assert tuned.status_code == 202, tuned.text
        job = finished(client, auth, tuned.json()["job_id"], timeout=300)
        assert job["status"] == "succeeded", job
        assert job["progress"]["done"] == job["progress"]["total"] == 2  # one clip, one epoch of each stage
        assert client.get(f"/v1/voices/{voice_id}", headers=auth).json()["finetuned"] is True

        warm = pipeline.finetuned_engines(settings)
        misses, hits = warm.misses, warm.hits
        after, again = render(), render()
        # The same seed and text: only the weights changed, so the audio must differ, and the warm
        # fine-tuned engine (loaded once) renders the same seed identically.
        assert not np.array_equal(before, after)
        assert np.array_equal(after, again)
        assert (warm.misses - misses, warm.hits - hits) == (1, 1)


def test_a_re_render_after_an_edit_says_how_many_chunks_it_reused(tmp_data_dir, models):
    # Sentences long enough that each is a chunk of its own.
    settings = embedded_settings(tmp_data_dir, models_dir=models, device="cpu", threads=1)
    app = create_app(settings)
    with TestClient(app) as client:
        _, token = service.create_member(app.state.backend, "me", admin=True)
        auth = {"Authorization": f"Bearer {token}"}
        created = client.post("/v1/voices", files={"audio": ("me.wav", audio_bytes(4.0))},
                              data={"transcript": "今天天气很好。", "language": "zh", "name": "me"}, headers=auth)
        voice_id = created.json()["voice_id"]
        assert finished(client, auth, created.json()["job_id"], timeout=300)["status"] == "succeeded"
        sentences = ["Today we walked to the park by the river.", "The ducks were loud and hungry.",
                     "We went home before the rain came."]

        def render(text: str) -> dict:
            queued = client.post("/v1/syntheses", json={"text": text, "voice_id": voice_id, "text_lang": "en",
                                                        "seed": 5, "text_split_method": "cut5"}, headers=auth)
            assert queued.status_code == 202, queued.text
            job = finished(client, auth, queued.json()["job_id"], timeout=300)
            assert job["status"] == "succeeded", job
            return job["progress"]

        first = render(" ".join(sentences))
        assert first["reused"] == 0 and first["total"] >= 3
        edited = render(" ".join([sentences[0], "The geese were quiet.", sentences[2]]))
        assert edited["total"] == first["total"]
        assert edited["reused"] == first["total"] - 1
