"""Issue #14 on a household with one worker process (concurrency 1), through the real stack (API,
Redis, PostgreSQL, S3, a Celery worker, tiny models): an interactive request submitted while a long
diary is in the middle of a batch runs, start to finish, while that batch is paused (no chunk of
the diary finishes meanwhile) and before the batch ends; the diary then goes on in the same
attempt and finishes with exactly one result and its live stream intact. The worker warms up at
start and says so in /healthz and in its stats (Flower)."""

from __future__ import annotations

import httpx
import pytest
import test_worker_integration as whole_stack
import torch
from jobs_fixtures import audio_bytes, wait_until
from sqlmodel import select
from test_streaming import Listener

from engine.kernels import choose_mode
from shared.db import Database
from shared.tables import Job, JobChunk

jobs_database, tiny_models, _member, _wait_for_chunks = (whole_stack.jobs_database, whole_stack.tiny_models,
                                                         whole_stack._member, whole_stack._wait_for_chunks)
# Background (over interactive_max_chars): 32 one-sentence chunks, the first decoded alone, the other
# 31 in one pool of up to 16 rows at batch_size 16. Once 16 chunks are out, 16 of the pool are left,
# each followed by CHUNK_DELAY_S: about 6 s of that pool still to go when the question is sent.
DIARY = "".join(f"第{i}句话讲今天的事情。" for i in range(32))
BATCH_SIZE = 16
MID_BATCH = 16  # chunks done when the question is sent: in the middle of the pool (chunks 1-31)
QUESTION = "今天天气很好。"  # interactive
CHUNK_DELAY_S = 0.4


@pytest.fixture(scope="module")
def solo(redis_url, jobs_database, s3, tiny_models, tmp_path_factory):
    with whole_stack.running_stack(redis_url, jobs_database, s3, tiny_models, tmp_path_factory,
                                   workers=("solo",), worker_warmup="true", worker_ready_heartbeat_s="1",
                                   worker_chunk_delay_s=str(CHUNK_DELAY_S)) as s:
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
    assert ready[0]["matmul"] == choose_mode(solo.settings.matmul, torch.device("cpu"), torch.float32)
    stats = solo.celery.control.inspect(timeout=2).stats()
    (node,) = [name for name in stats if name.startswith("solo@")]
    processes = stats[node]["echodiary"]["processes"]
    assert [p["state"] for p in processes] == ["ready"] and processes[0]["name"] == ready[0]["name"]


def _chunks_finished(db: Database, job_id: str) -> dict[int, float]:
    """When each chunk of a job was recorded as finished, by chunk index."""
    with db.read() as session:
        return {c.index: c.finished_at for c in session.exec(select(JobChunk).where(JobChunk.job_id == job_id))}


def _batch_numbers(total: int) -> dict[int, int]:
    """Which decode the engine renders each chunk of a fresh render in, by chunk index: the first
    chunk alone (0), every other one in one pool (1) that keeps up to BATCH_SIZE rows busy."""
    return {index: min(index, 1) for index in range(total)}


def assert_ran_mid_batch(db: Database, diary: Job, question: Job) -> None:
    """The question ran while the diary was paused inside one batch: no diary chunk finished from
    the question's start to its end, and the chunks just before and just after it share a batch (had
    the diary given way between batches instead, the question would wait for the batch's end)."""
    finished = _chunks_finished(db, diary.id)
    assert sorted(finished) == list(range(diary.progress_total))
    before = max(i for i, t in finished.items() if t < question.started_at)
    after = min(i for i, t in finished.items() if t > question.finished_at)
    assert after == before + 1, f"diary chunks {before + 1}..{after - 1} finished while the question ran"
    batch = _batch_numbers(diary.progress_total)
    assert batch[before] == batch[after], f"the question ran between batches (after chunk {before})"
    assert before >= MID_BATCH - 1 and batch[before] == batch[MID_BATCH - 1]  # the batch it was sent in


def test_an_interactive_request_runs_in_the_middle_of_a_diary_batch_on_the_only_worker(solo, ann):
    client, voice_id = ann
    diary_id = client.synthesize(DIARY, voice_id, format="wav", seed=5, batch_size=BATCH_SIZE).job_id
    listener = Listener(client, diary_id)
    listener.start()
    _wait_for_chunks(client, diary_id, MID_BATCH)
    question_id = client.synthesize(QUESTION, voice_id, format="wav").job_id
    answered = client.wait(question_id, timeout_s=60, poll_s=0.1)
    assert answered.status == "succeeded" and answered.lane == "interactive", answered.error
    assert client.job(diary_id).status == "running"  # it was paused, never stopped

    diary = client.wait(diary_id, timeout_s=180, poll_s=0.2)
    assert diary.status == "succeeded", diary.error
    row, question = solo.job_row(diary_id), solo.job_row(question_id)
    assert_ran_mid_batch(solo.db, row, question)
    assert row.attempt == 1 and row.stopped_attempts == 0 and row.chunks_reused == 0  # one attempt, no crash
    assert question.attempt == 1 and question.stopped_attempts == 0
    for job in (row, question):  # each has exactly its one result object, and its stream is it
        assert [k for k in solo.objects(job.member_id) if job.id in k] == [job.result_key]
    stored = solo.storage.get(row.result_key)
    streamed = listener.result()  # heard across the pause: exactly the stored audio (its head has the label)
    assert streamed[:4] == b"RIFF" and stored.endswith(streamed[44:])
    heard = Listener(client, question_id)
    heard.start()
    assert solo.storage.get(question.result_key).endswith(heard.result()[44:])


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


@pytest.mark.slow  # ~40 s (its own model load): the same run_job and pause point, another queue in front
def test_the_embedded_executor_gives_the_same_guarantee(tmp_data_dir, tiny_models):
    from jobs_fixtures import embedded_settings

    from producer.client import EmbeddedClient

    settings = embedded_settings(tmp_data_dir, models_dir=tiny_models, device="cpu", threads=1,
                                 worker_chunk_delay_s=CHUNK_DELAY_S, interactive_max_chars=40)
    with EmbeddedClient(settings) as client:
        voice = client.upload_voice(audio_bytes(4.0), "今天天气很好，我们去公园。", "zh", "me")
        assert client.wait(voice.job_id, timeout_s=120).status == "succeeded"
        diary_id = client.synthesize(DIARY, voice.voice_id, format="wav", seed=5, batch_size=BATCH_SIZE).job_id
        _wait_for_chunks(client, diary_id, MID_BATCH)
        question_id = client.synthesize(QUESTION, voice.voice_id).job_id
        assert client.wait(question_id, timeout_s=60, poll_s=0.1).status == "succeeded"
        assert client.job(diary_id).status == "running"
        assert client.wait(diary_id, timeout_s=180, poll_s=0.2).status == "succeeded"
        db = client.backend.db
        with db.read() as session:
            row, question = session.get(Job, diary_id), session.get(Job, question_id)
        assert_ran_mid_batch(db, row, question)
        assert row.attempt == 1 and row.stopped_attempts == 0 and row.chunks_reused == 0


def test_with_yield_to_interactive_off_a_diary_never_pauses(tmp_path):
    from worker.claim import Lease
    from worker.lanes import pause_point

    diary = Job(member_id="m", kind="synthesis", lane="background", queue="gpu")
    lease = Lease(Database(f"sqlite:///{tmp_path}/jobs.db"), diary.id, 1, 3.0)  # not entered: no heartbeat
    assert pause_point(lease, diary, enabled=False, run=lambda job_id: "succeeded") is None
    question = Job(member_id="m", kind="synthesis", lane="interactive", queue="gpu")
    assert pause_point(lease, question, enabled=True, run=lambda job_id: "succeeded") is None  # never nested
    assert pause_point(lease, diary, enabled=True, run=lambda job_id: "succeeded") is not None
