"""The worker's small parts on real SQLite and storage: leases, cancellation, chunk cache, retries."""

from __future__ import annotations

import time

import numpy as np
import pytest
from jobs_fixtures import audio_bytes, embedded_settings, free_port, wait_until

from shared import job_state, service
from shared.settings import Settings
from shared.storage import LocalStorage, S3Storage
from shared.tables import Job
from worker.cancel import cancel_checker
from worker.chunks import StorageChunkCache
from worker.claim import Lease, LostJob
from worker.pipeline import Opening, WarmCache
from worker.progress import progress_writer
from worker.runner import TransientError, run_job


@pytest.fixture
def backend(tmp_data_dir):
    return service.open_backend(embedded_settings(tmp_data_dir))


def _queued_enrollment(backend) -> tuple[service.Member, str]:
    member, _ = service.create_member(backend, "ann")
    _, job = service.create_voice(backend, member, audio_bytes(4.0), "你好。", "zh", "ann")
    return member, job.id


def test_profile_cache_keeps_the_most_recently_used():
    cache = WarmCache(2)
    loads = []
    get = lambda key: cache.get(key, lambda: loads.append(key) or key)  # noqa: E731
    get(("a", "1")), get(("b", "1")), get(("a", "1")), get(("c", "1")), get(("a", "1")), get(("b", "1"))
    assert loads == [("a", "1"), ("b", "1"), ("c", "1"), ("b", "1")]
    cache.discard_voice("a")
    get(("a", "1"))
    assert loads[-1] == ("a", "1") and cache.hits == 2


def test_the_heartbeat_renews_the_lease_and_notices_when_the_job_is_gone(backend):
    _, job_id = _queued_enrollment(backend)
    with backend.db.write() as session:
        attempt = job_state.claim(session, job_id, "w", 0.6)
    with Lease(backend.db, job_id, attempt, 0.6) as lease:
        time.sleep(1.0)  # past the first lease: only renewals keep it ours
        with backend.db.write() as session:
            assert job_state.claim(session, job_id, "thief", 60) is None
        with backend.db.write() as session:  # a member deletes it meanwhile
            session.exec(Job.__table__.delete().where(Job.id == job_id))
        time.sleep(0.5)
        assert lease.lost
        with pytest.raises(LostJob):
            lease.check()


def test_progress_and_cancellation_go_through_the_job_row(backend):
    member, job_id = _queued_enrollment(backend)
    with backend.db.write() as session:
        attempt = job_state.claim(session, job_id, "w", 60)
    lease = Lease(backend.db, job_id, attempt, 60)
    on_progress, should_cancel = progress_writer(lease), cancel_checker(lease)
    on_progress(1, 3)
    assert service.get_job(backend, member, job_id).progress.done == 1
    assert not should_cancel()
    service.cancel_job(backend, member, job_id)
    time.sleep(0.25)  # the checker reads the row at most every 0.2 s
    assert should_cancel()


def test_an_interactive_opening_puts_its_early_start_on_record_and_a_takeover_replays_it(backend):
    from engine.exporting import MIN_LOUDNESS_S
    from shared.tables import BACKGROUND, INTERACTIVE
    from worker.runner import _opening

    _, job_id = _queued_enrollment(backend)
    with backend.db.write() as session:
        attempt = job_state.claim(session, job_id, "w", 60)
    with backend.db.read() as session:
        job = session.get(Job, job_id)
        session.expunge(job)
    job.lane = INTERACTIVE
    lease = Lease(backend.db, job_id, attempt, 60)
    opening = _opening(backend.settings, job, lease)
    assert opening.early_start and opening.lead_s() == MIN_LOUDNESS_S and opening.replay_at is None
    opening.on_early_start(23)
    with backend.db.read() as session:
        taken_over = session.get(Job, job_id)
        session.expunge(taken_over)
    assert taken_over.early_tokens == 23 and _opening(backend.settings, taken_over, lease).replay_at == 23
    with pytest.raises(LostJob):  # an attempt that is no longer the job's cannot rewrite it
        _opening(backend.settings, job, Lease(backend.db, job_id, attempt + 1, 60)).on_early_start(5)
    job.lane = BACKGROUND
    assert _opening(backend.settings, job, lease) == Opening()
    job.lane = INTERACTIVE
    assert _opening(backend.settings.model_copy(update={"interactive_early_start": False}), job, lease) == Opening()


def test_chunk_cache_round_trips_float_audio_and_clears(tmp_path):
    store = LocalStorage(tmp_path, "http://x", b"k" * 32)
    member, job = "a" * 32, "b" * 32
    cache = StorageChunkCache(store, member, job)
    audio = np.linspace(-1, 1, 1000, dtype=np.float32)
    cache.put("c" * 32, audio)
    assert np.array_equal(cache.get("c" * 32), audio) and cache.reused == 1
    assert cache.get("d" * 32) is None and cache.get("../x") is None
    cache.clear()
    assert store.list(f"members/{member}/") == []


def test_a_claimed_job_is_run_once_and_a_second_delivery_is_skipped(backend):
    _, job_id = _queued_enrollment(backend)
    with backend.db.write() as session:
        job_state.claim(session, job_id, "first", 60)
    assert run_job(backend, job_id) == "skipped"  # a copy of the message while the first still runs
    assert run_job(backend, "not-an-id") == "skipped"


def test_an_unreachable_storage_gives_the_job_back_for_a_retry(tmp_data_dir):
    settings = embedded_settings(tmp_data_dir)
    backend = service.open_backend(settings)
    _, job_id = _queued_enrollment(backend)
    broken = service.Backend(settings, backend.db, S3Storage(f"http://127.0.0.1:{free_port()}", "a", "b", "x"),
                             backend.publish)
    with pytest.raises(TransientError):
        run_job(broken, job_id)
    with backend.db.read() as session:
        job = session.get(Job, job_id)
    assert job.status == "queued" and job.attempt == 1 and job.worker is None


def test_the_default_lease_lets_a_killed_workers_job_be_taken_over_within_15_s():
    settings = Settings(_env_file=None)
    assert settings.job_lease_s + settings.sweep_interval_s <= 15
    assert Lease(None, "j", 1, settings.job_lease_s, settings.job_heartbeat_s).heartbeat_s <= settings.job_lease_s / 3


def test_a_job_whose_lease_holder_stops_heartbeating_is_taken_over_within_the_bound(postgres_url, tmp_path):
    import threading

    from shared.db import Database
    from shared.tables import Member
    from worker.sweeper import sweep_once

    lease_s, sweep_s = 1.5, 0.3
    settings = embedded_settings(tmp_path, job_lease_s=lease_s, job_heartbeat_s=0.3, sweep_interval_s=sweep_s)
    db = Database(postgres_url)
    member = Member(name=f"m-{time.monotonic_ns()}")
    job = Job(member_id=member.id, kind="synthesis", text="x")
    with db.write() as session:
        session.add(member)
        session.flush()
        session.add(job)
    taken: list[tuple[float, int]] = []

    def another_worker(dispatch: job_state.Dispatch) -> None:  # what a worker handed the message does
        with db.write() as session:
            attempt = job_state.claim(session, dispatch.job_id, "w2", 60, settings.job_max_attempts)
        if dispatch.job_id == job.id and attempt is not None:
            taken.append((time.monotonic(), attempt))

    backend = service.Backend(settings, db, LocalStorage(tmp_path / "s", "http://x", b"k" * 32), another_worker)
    stop = threading.Event()

    def sweeper() -> None:
        while not stop.wait(sweep_s):
            sweep_once(backend, 3600, cleanup=False)

    thread = threading.Thread(target=sweeper, daemon=True)
    thread.start()
    try:
        with db.write() as session:
            attempt = job_state.claim(session, job.id, "w1", lease_s)
        with Lease(db, job.id, attempt, lease_s, settings.job_heartbeat_s):
            time.sleep(3 * lease_s)  # a live holder keeps its job however long it works
            assert taken == []
        stopped = time.monotonic()  # the holder dies: no more heartbeats
        wait_until(lambda: taken, 10, 0.05, "the takeover")
    finally:
        stop.set()
        thread.join(5)
    (at, new_attempt), = taken
    assert new_attempt == 2 and at - stopped <= lease_s + sweep_s + 0.5
    with db.read() as session:
        row = session.get(Job, job.id)
    assert (row.status, row.worker, row.stopped_attempts) == ("running", "w2", 1)


def test_the_sweep_deletes_the_chunks_of_failed_and_cancelled_jobs_only(postgres_url, s3, tmp_path):
    from shared import keys
    from shared.db import Database
    from shared.tables import Member
    from worker.sweeper import sweep_once

    storage = S3Storage(s3.endpoint_url, s3.access_key, s3.secret_key, s3.bucket)
    backend = service.Backend(embedded_settings(tmp_path), Database(postgres_url), storage, lambda _d: None)
    member = Member(name=f"m-{time.monotonic_ns()}")
    jobs = {name: Job(member_id=member.id, kind="synthesis", text="x") for name in ("failed", "cancelled", "running")}
    with backend.db.write() as session:
        session.add(member)
        session.flush()
        session.add_all(jobs.values())
    for name, job in jobs.items():
        cache = StorageChunkCache(storage, member.id, job.id)
        with backend.db.write() as session:
            attempt = job_state.claim(session, job.id, "w", 60)
            for done in (1, 2):
                cache.put(f"{done:032x}", np.zeros(10, dtype=np.float32))
                job_state.record_progress(session, job.id, attempt, done, 3, 60)
            if name == "failed":
                job_state.fail(session, job.id, attempt, "internal error")
            elif name == "cancelled":
                job_state.mark_cancelled(session, job.id, attempt)
    sweep_once(backend, 3600, cleanup=False)
    left = {name: storage.list(keys.chunks_prefix(member.id, job.id)) for name, job in jobs.items()}
    assert (left["failed"], left["cancelled"], len(left["running"])) == ([], [], 2)
    assert service.clear_ended_chunks(backend) == 0  # done once; a later sweep has nothing to do


def test_a_live_worker_whose_lease_lapsed_takes_back_the_stopped_attempt(backend):
    """A stall (or a database outage) longer than the lease is not a crash: it must not count."""
    from sqlalchemy import update

    _, job_id = _queued_enrollment(backend)
    storage = backend.storage

    class Stalling:  # the real storage, during whose first read the worker stalls past its lease
        def __getattr__(self, name: str):  # noqa: ANN204
            return getattr(storage, name)

        def get(self, key: str) -> bytes:
            with backend.db.write() as session:
                session.exec(update(Job).where(Job.id == job_id).values(lease_until=time.time() - 1))
            job_state.requeue_lost(backend.db, lambda _d: None, 3600, max_attempts=3)
            with backend.db.read() as session:
                assert session.get(Job, job_id).stopped_attempts == 1  # counted as a crash, for now
            return storage.get(key)

    stalled = service.Backend(backend.settings, backend.db, Stalling(), backend.publish)
    assert run_job(stalled, job_id) == "lost"
    with backend.db.read() as session:
        job = session.get(Job, job_id)
    assert (job.status, job.stopped_attempts) == ("queued", 0)
