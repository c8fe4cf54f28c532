"""Issue #14 on a household with one worker process (concurrency 1), through the real stack (API,
Redis, PostgreSQL, S3, a Celery worker, tiny models): an interactive request submitted while a long
diary renders starts before the diary finishes, and the diary, which gave way between batches,
still finishes with exactly one result, its chunks reused and its live stream intact; the worker
warms up at start and says so in /healthz and in its stats (Flower)."""

from __future__ import annotations

import httpx
import pytest
import test_worker_integration as whole_stack
from jobs_fixtures import audio_bytes, wait_until
from test_streaming import Listener

from shared.tables import Job

jobs_database, tiny_models, _member, _wait_for_chunks = (whole_stack.jobs_database, whole_stack.tiny_models,
                                                         whole_stack._member, whole_stack._wait_for_chunks)
DIARY = "".join(f"第{i}句话讲今天的事情。" for i in range(10))  # background: over interactive_max_chars
QUESTION = "今天天气很好。"  # interactive


@pytest.fixture(scope="module")
def solo(redis_url, jobs_database, s3, tiny_models, tmp_path_factory):
    with whole_stack.running_stack(redis_url, jobs_database, s3, tiny_models, tmp_path_factory,
                                   workers=("solo",), worker_warmup="true", worker_ready_heartbeat_s="1") as s:
        yield s


@pytest.fixture(scope="module")
def ann(solo):
    client = _member(solo, "ann")
    created = client.upload_voice(audio_bytes(4.0), "今天天气很好，我们去公园。", "zh", "ann")
    assert client.wait(created.job_id, timeout_s=120, poll_s=0.2).status == "succeeded"
    return client, created.voice_id


def _workers(stack) -> list[dict]:  # noqa: ANN001 - a Stack
    health = httpx.get(f"{stack.settings.api_url}/healthz", timeout=5).json()
    return [w for w in health["workers"] if w["name"].startswith("solo@")]


def test_the_worker_warms_up_at_start_and_reports_ready(solo):
    ready = wait_until(lambda: [w for w in _workers(solo) if w["state"] == "ready"], 60, 0.2, "a ready worker")
    assert len(ready) == 1 and ready[0]["device"] == "cpu" and ready[0]["warm_up_s"] > 0
    assert ready[0]["models"] == str(solo.settings.models_dir) and ready[0]["voices_warmed"] == 0  # none used yet
    stats = solo.celery.control.inspect(timeout=2).stats()
    (node,) = [name for name in stats if name.startswith("solo@")]
    processes = stats[node]["echodiary"]["processes"]
    assert [p["state"] for p in processes] == ["ready"] and processes[0]["name"] == ready[0]["name"]


def test_an_interactive_request_does_not_wait_behind_a_diary_on_the_only_worker(solo, ann):
    client, voice_id = ann
    diary_id = client.synthesize(DIARY, voice_id, format="wav", seed=5, batch_size=2).job_id
    listener = Listener(client, diary_id)
    listener.start()
    _wait_for_chunks(client, diary_id, 2)
    question = client.synthesize(QUESTION, voice_id, format="wav").job_id
    answered = client.wait(question, timeout_s=60, poll_s=0.1)
    assert answered.status == "succeeded" and client.job(question).lane == "interactive"
    diary = client.job(diary_id)
    assert diary.status in ("queued", "running"), "the diary finished before the interactive job ran"

    diary = client.wait(diary_id, timeout_s=120, poll_s=0.2)
    assert diary.status == "succeeded", diary.error
    assert answered.started_at < diary.finished_at
    row = solo.job_row(diary_id)
    assert row.attempt >= 2 and row.stopped_attempts == 0  # it gave way: no crash was counted
    assert row.chunks_reused > 0
    member = row.member_id
    assert [k for k in solo.objects(member) if diary_id in k] == [row.result_key]  # one result, no chunks left
    stored = solo.storage.get(row.result_key)
    streamed = listener.result()  # heard across the hand-over: still exactly the stored audio
    assert streamed[:4] == b"RIFF" and stored.endswith(streamed[44:])


def test_a_resumed_attempt_continues_the_live_stream_after_the_bytes_already_published(tmp_path):
    from shared.pieces import MemoryPieceChannel
    from shared.storage import LocalStorage
    from worker.runner import PiecePublisher

    channel = MemoryPieceChannel()
    storage = LocalStorage(tmp_path, "http://testserver", b"k" * 32)
    with storage.open_writer("first.wav") as out:  # the attempt that gave way after two pieces
        first = PiecePublisher(channel, "job", out)
        first(b"RIFF", 0.1)
        first(b"12", 0.2)
    with storage.open_writer("second.wav") as out:  # the same bytes, cut elsewhere (cached chunks come whole)
        second = PiecePublisher(channel, "job", out, resumed=True)
        for data in (b"RIF", b"F1234", b"56"):
            second(data, 0.5)
        channel.finish("job")
        out.commit()
    assert storage.get("second.wav") == b"RIFF123456"
    assert b"".join(p.data for p in channel.read("job", block_s=0.1)) == b"RIFF123456"


@pytest.mark.slow  # ~30 s (its own model load): the same run_job as above, another queue in front of it
def test_the_embedded_executor_gives_the_same_guarantee(tmp_data_dir, tiny_models):
    from jobs_fixtures import embedded_settings

    from producer.client import EmbeddedClient

    settings = embedded_settings(tmp_data_dir, models_dir=tiny_models, device="cpu", threads=1,
                                 worker_chunk_delay_s=0.2, interactive_max_chars=40)
    with EmbeddedClient(settings) as client:
        voice = client.upload_voice(audio_bytes(4.0), "今天天气很好，我们去公园。", "zh", "me")
        assert client.wait(voice.job_id, timeout_s=120).status == "succeeded"
        diary_id = client.synthesize(DIARY, voice.voice_id, format="wav", seed=5, batch_size=2).job_id
        _wait_for_chunks(client, diary_id, 2)
        question = client.wait(client.synthesize(QUESTION, voice.voice_id).job_id, timeout_s=60, poll_s=0.1)
        assert question.status == "succeeded" and client.job(diary_id).status in ("queued", "running")
        diary = client.wait(diary_id, timeout_s=120, poll_s=0.2)
        assert diary.status == "succeeded" and question.started_at < diary.finished_at
        with client.backend.db.read() as session:
            row = session.get(Job, diary_id)
        assert row.attempt >= 2 and row.stopped_attempts == 0 and row.chunks_reused > 0
