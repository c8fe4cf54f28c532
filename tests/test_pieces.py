"""The per-job piece channel on real Redis and in memory: order, late listeners, end marker."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import redis

from shared.pieces import MemoryPieceChannel, PieceChannel, RedisPieceChannel


@pytest.fixture(params=["redis", "memory"])
def channel(request, redis_url: str) -> PieceChannel:
    if request.param == "memory":
        return MemoryPieceChannel()
    return RedisPieceChannel(redis.Redis.from_url(redis_url), ttl_s=60)


def test_late_listener_gets_every_piece_in_order(channel: PieceChannel) -> None:
    for index in range(3):
        channel.publish("job-late", index, (index + 1) / 4, bytes([index]) * 5)
    channel.finish("job-late")
    pieces = list(channel.read("job-late", block_s=1))
    assert [p.index for p in pieces] == [0, 1, 2, -1]
    assert pieces[-1].end and b"".join(p.data for p in pieces) == b"\0" * 5 + b"\1" * 5 + b"\2" * 5


def test_listener_blocks_for_pieces_published_later(channel: PieceChannel) -> None:
    def write() -> None:
        time.sleep(0.2)
        channel.publish("job-live", 0, 0.5, b"abc")
        channel.finish("job-live")

    threading.Thread(target=write).start()
    pieces = list(channel.read("job-live", block_s=5))
    assert [(p.data, p.end) for p in pieces] == [(b"abc", False), (b"", True)]


def test_silent_channel_ends_after_block(channel: PieceChannel) -> None:
    assert list(channel.read("job-none", block_s=0.2)) == []


def test_a_second_attempt_republishing_from_zero_is_heard_once(channel: PieceChannel) -> None:
    job = f"job-retry-{uuid.uuid4().hex}"
    for index in range(2):  # the first attempt dies after two pieces
        channel.publish(job, index, 0.1, f"p{index}".encode())
    for index in range(4):  # the second starts again from 0, with the same bytes
        channel.publish(job, index, 0.2, f"p{index}".encode())
    channel.finish(job)
    pieces = list(channel.read(job, block_s=1))
    assert [p.index for p in pieces] == [0, 1, 2, 3, -1]
    assert b"".join(p.data for p in pieces) == b"p0p1p2p3"


def test_the_end_marker_carries_why_the_job_stopped(channel: PieceChannel) -> None:
    job = f"job-failed-{uuid.uuid4().hex}"
    channel.publish(job, 0, 0.5, b"x")
    channel.finish(job, error="cancelled")
    *_, end = channel.read(job, block_s=1)
    assert end.end and end.error == "cancelled"
    ok = f"job-ok-{uuid.uuid4().hex}"
    channel.finish(ok)
    assert [p.error for p in channel.read(ok, block_s=1)] == [None]


def test_a_reset_channel_starts_afresh(channel: PieceChannel) -> None:
    job = f"job-reset-{uuid.uuid4().hex}"
    channel.publish(job, 0, 0.5, b"old")
    channel.finish(job, error="cancelled")
    channel.reset(job)
    channel.publish(job, 0, 1.0, b"new")
    channel.finish(job)
    assert [(p.data, p.error) for p in channel.read(job, block_s=1)] == [(b"new", None), (b"", None)]


def test_memory_keeps_only_the_last_finished_jobs() -> None:
    channel = MemoryPieceChannel()
    jobs = [f"job-{i}" for i in range(MemoryPieceChannel.KEEP_FINISHED + 2)]
    for job in jobs:
        channel.publish(job, 0, 1.0, job.encode())
        channel.finish(job)
    assert list(channel.read(jobs[0], block_s=0.1)) == []  # dropped: its listeners get the stored file
    assert [p.data for p in channel.read(jobs[-1], block_s=0.1)] == [jobs[-1].encode(), b""]


def test_a_worker_whose_redis_is_down_keeps_writing_the_stored_file(tmp_path) -> None:
    from jobs_fixtures import free_port

    from shared.storage import LocalStorage
    from worker.runner import PiecePublisher, _end_stream

    down = RedisPieceChannel(redis.Redis(port=free_port(), socket_connect_timeout=0.2), ttl_s=60)
    storage = LocalStorage(tmp_path, "http://testserver", b"k" * 32)
    with storage.open_writer("jobs/x/result.wav") as out:
        publish = PiecePublisher(down, "job-down", out)
        for data in (b"RIFF", b"1234", b"5678"):
            publish(data, 0.5)
        _end_stream(down, "job-down", "failed: nothing")  # logged, not raised
        out.commit()
    assert storage.get("jobs/x/result.wav") == b"RIFF12345678" and not publish.live and publish.index == 3
