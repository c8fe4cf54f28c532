"""Listening while it renders, through the whole stack (API, Redis, Celery workers, S3, tiny models)
and in the embedded mode: GET /v1/jobs/{id}/audio, chunked and as server-sent events."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import numpy as np
import pytest
import test_worker_integration as whole_stack
from jobs_fixtures import audio_bytes, embedded_settings

from producer.client import ApiError, EmbeddedClient

# The whole-stack fixtures: an API, two Celery workers, Redis, PostgreSQL, S3 and tiny models.
stack, ann, jobs_database, tiny_models = (whole_stack.stack, whole_stack.ann, whole_stack.jobs_database,
                                          whole_stack.tiny_models)
_member, _wait_for_chunks = whole_stack._member, whole_stack._wait_for_chunks
ENTRY = "".join(f"第{i}句，今天我们去公园散步。" for i in range(6))

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="decoding streamed FLAC needs ffmpeg")


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


class Listener(threading.Thread):
    """Reads a stream in the background; notes the job's status when the first bytes arrive."""

    def __init__(self, client, job_id: str) -> None:  # noqa: ANN001 - a Client
        super().__init__(daemon=True)
        self.client, self.job_id = client, job_id
        self.data = bytearray()
        self.status_at_first_byte: str | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for data in self.client.stream_audio(self.job_id):
                if not self.data:
                    self.status_at_first_byte = self.client.job(self.job_id).status
                self.data.extend(data)
        except BaseException as exc:  # re-raised in the test's thread
            self.error = exc

    def result(self) -> bytes:
        self.join(120)
        if self.error is not None:
            raise self.error
        return bytes(self.data)


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_listeners_hear_the_stored_audio_while_it_renders(stack, ann, fmt):
    client, voice_id = ann
    job_id = client.synthesize(ENTRY, voice_id, format=fmt, seed=3).job_id
    early = Listener(client, job_id)
    early.start()
    _wait_for_chunks(client, job_id, 2)
    late = list(client.stream_pieces(job_id))  # joins mid-render, as server-sent events
    job = client.wait(job_id, timeout_s=120)
    assert job.status == "succeeded", job.error
    streamed = early.result()
    assert early.status_at_first_byte == "running"  # audio came before the job finished
    assert b"".join(p.data for p in late) == streamed  # the late listener got it all, from the start
    progress = [p.progress for p in late]
    assert progress == sorted(progress) and progress[-1] == 1.0 and len(late) > 2
    stored = stack.storage.get(stack.job_row(job_id).result_key)
    assert np.array_equal(samples(streamed), samples(stored))  # watermark and loudness included
    if fmt == "wav":  # the stored file is the stream with its header rewritten (sizes, AIGC label)
        assert stored[:4] == streamed[:4] == b"RIFF" and stored.endswith(streamed[44:])
    assert b"".join(client.stream_audio(job_id)) == stored  # after the end: the stored file itself


def test_another_member_gets_404_and_a_cancelled_job_ends_the_stream_with_why(stack, ann):
    client, voice_id = ann
    job_id = client.synthesize(ENTRY * 2, voice_id, format="wav").job_id
    bob = _member(stack, "bob")
    for listen in (bob.stream_audio, bob.stream_pieces):
        with pytest.raises(ApiError) as refused:
            b"".join(listen(job_id)) if listen == bob.stream_audio else list(listen(job_id))
        assert refused.value.status == 404
    _wait_for_chunks(client, job_id, 1)
    threading.Timer(0.5, client.cancel, (job_id,)).start()
    with pytest.raises(ApiError) as stopped:
        list(client.stream_pieces(job_id))
    assert stopped.value.status == 409 and "cancelled" in stopped.value.detail
    assert client.wait(job_id, timeout_s=60).status == "cancelled"
    with pytest.raises(ApiError) as gone:
        b"".join(client.stream_audio(job_id))
    assert gone.value.status == 409 and "no audio" in gone.value.detail


def test_the_embedded_mode_streams_the_same_way(tmp_data_dir, tiny_models):
    settings = embedded_settings(tmp_data_dir, models_dir=tiny_models, device="cpu", threads=1,
                                 worker_chunk_delay_s=0.2)
    with EmbeddedClient(settings) as client:
        voice = client.upload_voice(audio_bytes(4.0), "今天天气很好，我们去公园。", "zh", "me")
        assert client.wait(voice.job_id, timeout_s=120).status == "succeeded"
        job_id = client.synthesize(ENTRY, voice.voice_id, format="wav", seed=4).job_id
        first_at: list[float] = []
        streamed = bytearray()
        for piece in client.stream_pieces(job_id):
            first_at = first_at or [time.monotonic()]
            streamed.extend(piece.data)
        job = client.wait(job_id, timeout_s=60)
        assert job.status == "succeeded"
        stored = (tmp_data_dir / "out.wav")
        client.download(job_id, stored)
        assert np.array_equal(samples(bytes(streamed)), samples(stored.read_bytes()))
        assert stored.read_bytes().endswith(bytes(streamed[44:]))
        assert b"".join(client.stream_audio(job_id)) == stored.read_bytes()
        with pytest.raises(ApiError) as missing:
            list(client.stream_pieces("0" * 32))
        assert missing.value.status == 404


# --- the OpenAI-compatible endpoint, with OpenAI's own client ------------------------------------

@pytest.fixture(scope="module")
def openai_client(stack, ann):
    from openai import OpenAI

    client, _ = ann
    token = client.http.headers["Authorization"].split()[1]
    return OpenAI(base_url=f"{stack.settings.api_url}/v1", api_key=token, max_retries=0, timeout=120)


def _speech_job(client, before: set[str]):  # noqa: ANN001, ANN202 - a Client; its new job
    jobs = [j for j in client.jobs(limit=100).items if j.job_id not in before]
    assert len(jobs) == 1
    return jobs[0]


def test_openai_speech_is_a_job_like_any_other_and_streams_its_audio(stack, ann, openai_client):
    from engine.export import read_label

    client, _ = ann
    before = {j.job_id for j in client.jobs(limit=100).items}
    whole = openai_client.audio.speech.create(model="tts-1", voice="ann", input="今天天气很好。我们去公园。",
                                              response_format="wav", speed=1.2)
    job = _speech_job(client, before)
    assert job.lane == "interactive" and client.wait(job.job_id, timeout_s=60).status == "succeeded"
    stored = stack.storage.get(stack.job_row(job.job_id).result_key)
    assert np.array_equal(samples(whole.content), samples(stored))
    assert read_label(stored).produce_id == job.job_id  # labelled (and watermarked) as every result is
    before.add(job.job_id)
    with openai_client.audio.speech.with_streaming_response.create(
            model="gpt-sovits", voice="ann", input="晚上我们看书。", response_format="flac") as response:
        streamed = b"".join(response.iter_bytes())
        assert response.headers["content-type"] == "audio/flac"
    job = _speech_job(client, before)
    assert client.wait(job.job_id, timeout_s=60).status == "succeeded"
    assert np.array_equal(samples(streamed), samples(stack.storage.get(stack.job_row(job.job_id).result_key)))


def test_openai_speech_as_server_sent_events_of_pcm(stack, ann, openai_client):
    import base64
    import json

    client, _ = ann
    before = {j.job_id for j in client.jobs(limit=100).items}
    with openai_client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="ann", input="今天天气很好。", response_format="pcm", stream_format="sse") as response:
        events = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]
    assert [e["type"] for e in events][-1] == "speech.audio.done"
    assert {e["type"] for e in events[:-1]} == {"speech.audio.delta"} and len(events) > 1
    pcm = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    job = _speech_job(client, before)
    assert client.wait(job.job_id, timeout_s=60).status == "succeeded"
    stored = samples(stack.storage.get(stack.job_row(job.job_id).result_key))
    assert np.array_equal(np.frombuffer(pcm, "<i2") / 32768.0, stored.astype(np.float64))


def test_openai_speech_errors_have_openais_shape(stack, openai_client):
    import openai

    assert {"tts-1", "gpt-sovits"} <= {m.id for m in openai_client.models.list()}
    refusals = {
        "response_format": dict(response_format="aac"),
        "speed": dict(speed=3.0),
        "voice": dict(voice="ann:cheerful"),
        "input": dict(input="字" * 4097),
    }
    for param, change in refusals.items():
        with pytest.raises(openai.BadRequestError) as refused:
            openai_client.audio.speech.create(**{"model": "tts-1", "voice": "ann", "input": "你好。", **change})
        error = refused.value.body
        assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"]
    with pytest.raises(openai.NotFoundError) as missing:
        openai_client.audio.speech.create(model="tts-1", voice="nobody", input="你好。")
    assert missing.value.body["param"] == "voice" and "ann" in missing.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        openai_client.audio.speech.create(model="whisper-1", voice="ann", input="你好。")
    stranger = openai.OpenAI(base_url=f"{stack.settings.api_url}/v1", api_key="edy_wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as unknown:
        stranger.audio.speech.create(model="tts-1", voice="ann", input="你好。")
    assert unknown.value.body["type"] == "authentication_error"
