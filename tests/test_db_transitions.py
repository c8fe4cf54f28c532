"""Job state changes on SQLite and PostgreSQL, with several processes racing for the same rows."""

from __future__ import annotations

import multiprocessing as mp
import time

import pytest
from sqlalchemy import func, inspect, select, update

from shared import job_state
from shared.db import Database
from shared.tables import Job, JobChunk, Member


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    return request.getfixturevalue("postgres_url")


def _member_with_jobs(db: Database, n: int, **job_fields) -> tuple[str, list[str]]:
    member = Member(name=f"m-{time.monotonic_ns()}")
    jobs = [Job(member_id=member.id, kind="synthesis", text="x", created_at=time.time() + i * 1e-3, **job_fields)
            for i in range(n)]
    with db.write() as session:
        session.add(member)
        session.flush()
        session.add_all(jobs)
    return member.id, [j.id for j in jobs]


def _claim_all(url: str, job_ids: list[str], name: str) -> list[str]:
    db = Database(url)
    won = []
    for job_id in job_ids:
        with db.write() as session:
            if job_state.claim(session, job_id, name, 60) is not None:
                won.append(job_id)
    return won


def _dispatch(url: str, member_id: str, concurrency: int) -> list[str]:
    db = Database(url)
    published: list[str] = []
    job_state.dispatch_member(db, member_id, lambda d: published.append(d.job_id), concurrency)
    return published


def test_tables_are_created_without_migrations_and_creating_again_is_harmless(db_url):
    Database(db_url)
    db = Database(db_url)
    names = set(inspect(db.write_engine).get_table_names())
    assert {"member", "api_token", "voice", "job", "job_chunk"} <= names


def test_each_job_is_claimed_by_exactly_one_of_several_processes(db_url):
    db = Database(db_url)
    _, job_ids = _member_with_jobs(db, 24)
    with mp.get_context("spawn").Pool(3) as pool:
        results = pool.starmap(_claim_all, [(db_url, job_ids, f"w{i}") for i in range(3)])
    claimed = [job_id for won in results for job_id in won]
    assert sorted(claimed) == sorted(job_ids)  # every job once, none twice
    with db.read() as session:
        attempts = session.exec(select(Job.attempt).where(Job.id.in_(job_ids))).scalars().all()
    assert set(attempts) == {1}


def test_dispatchers_in_several_processes_publish_no_more_than_the_member_limit(db_url):
    db = Database(db_url)
    member_id, _ = _member_with_jobs(db, 10)
    with mp.get_context("spawn").Pool(3) as pool:
        results = pool.starmap(_dispatch, [(db_url, member_id, 2)] * 6)
    published = [job_id for batch in results for job_id in batch]
    assert len(published) == len(set(published)) == 2


def test_a_lapsed_lease_is_taken_over_and_the_old_attempt_can_no_longer_write(db_url):
    db = Database(db_url)
    _, (job_id,) = _member_with_jobs(db, 1)
    with db.write() as session:
        first = job_state.claim(session, job_id, "w1", 0.2)
    with db.write() as session:
        assert job_state.claim(session, job_id, "w2", 60) is None  # lease still live
    time.sleep(0.3)
    with db.write() as session:
        second = job_state.claim(session, job_id, "w2", 60)
    assert (first, second) == (1, 2)
    with db.write() as session:
        assert not job_state.record_progress(session, job_id, first, 1, 4, 60)
        assert not job_state.finish(session, job_id, first, result_key="stale")
        assert job_state.record_progress(session, job_id, second, 1, 4, 60)
        assert job_state.finish(session, job_id, second, result_key="fresh")
    with db.read() as session:
        job = session.get(Job, job_id)
        chunks = session.exec(select(func.count()).select_from(JobChunk).where(JobChunk.job_id == job_id)).one()[0]
    assert (job.status, job.result_key, job.worker, chunks) == ("succeeded", "fresh", "w2", 1)


def test_the_sweep_requeues_jobs_of_vanished_workers_and_finishes_their_cancellations(db_url):
    db = Database(db_url)
    _, (lost, cancelled, alive) = _member_with_jobs(db, 3)
    with db.write() as session:
        for job_id in (lost, cancelled, alive):
            job_state.claim(session, job_id, "gone", 60)
        session.exec(update(Job).where(Job.id.in_([lost, cancelled])).values(lease_until=time.time() - 1))
        session.exec(update(Job).where(Job.id == cancelled).values(cancel_requested=True))
    published: list[str] = []
    assert job_state.requeue_lost(db, lambda d: published.append(d.job_id), redeliver_after_s=3600) == [lost]
    assert published == [lost]
    assert job_state.requeue_lost(db, lambda d: published.append(d.job_id), redeliver_after_s=3600) == []
    with db.read() as session:
        status = {j: session.get(Job, j).status for j in (lost, cancelled, alive)}
    assert status == {lost: "queued", cancelled: "cancelled", alive: "running"}
    with db.write() as session:
        assert job_state.claim(session, lost, "w2", 60) == 2


def test_a_job_dispatched_long_ago_is_published_again(db_url):
    db = Database(db_url)
    _, (job_id,) = _member_with_jobs(db, 1, dispatched_at=time.time() - 100)
    published: list[str] = []
    assert job_state.requeue_lost(db, lambda d: published.append(d.job_id), redeliver_after_s=50) == [job_id]
    assert job_state.requeue_lost(db, lambda d: published.append(d.job_id), redeliver_after_s=50) == []


def test_cancel_of_a_queued_job_beats_a_later_claim(db_url):
    db = Database(db_url)
    member_id, (job_id,) = _member_with_jobs(db, 1)
    with db.write() as session:
        assert job_state.request_cancel(session, job_id, member_id) == ("cancelled", True)
        assert job_state.claim(session, job_id, "w", 60) is None
        assert job_state.request_cancel(session, job_id, "someone-else") is None


def test_a_worker_handed_a_new_job_finds_it_committed(db_url, tmp_path):
    """Regression: publishing before the commit let an instant worker miss the new row and drop it."""
    from shared import service
    from shared.schemas import SynthesisRequest
    from shared.settings import Settings
    from shared.storage import LocalStorage
    from shared.tables import Voice

    db = Database(db_url)
    worker_db = Database(db_url)  # another connection pool, as a worker process has
    claims: list[int | None] = []

    def instant_worker(dispatch: job_state.Dispatch) -> None:
        with worker_db.write() as session:
            claims.append(job_state.claim(session, dispatch.job_id, "instant", 60))

    settings = Settings(_env_file=None, data_dir=tmp_path, allow_legacy_voices=True)  # a bare Voice row: no consent
    backend = service.Backend(settings, db, LocalStorage(tmp_path, "http://x", b"k" * 32), instant_worker)
    member, _ = service.create_member(backend, f"m-{time.monotonic_ns()}")
    voice = Voice(member_id=member.id, name="v", language="zh", transcript="x", status="ready", profile_key="k")
    with db.write() as session:
        session.add(voice)
    job, _ = service.create_synthesis(backend, member, SynthesisRequest(text="今天。", voice_id=voice.id))
    assert claims == [1]
    with db.read() as session:
        assert session.get(Job, job.id).status == "running"


# --- attempts: a job whose worker keeps dying fails, and frees its member's lane -----------------

def _lapse(db: Database, job_id: str) -> None:
    with db.write() as session:  # the holder stopped renewing: its lease is in the past
        session.exec(update(Job).where(Job.id == job_id).values(lease_until=time.time() - 1))


def test_a_job_whose_worker_stops_three_times_fails_with_a_message_and_frees_the_lane(db_url):
    db = Database(db_url)
    member_id, (poison, next_job) = _member_with_jobs(db, 2)
    published: list[str] = []
    publish = lambda d: published.append(d.job_id)  # noqa: E731
    assert job_state.dispatch_member(db, member_id, publish, concurrency=1) == [poison]
    with db.write() as session:
        assert job_state.claim(session, poison, "w1", 60, max_attempts=3) == 1
    _lapse(db, poison)
    assert job_state.requeue_lost(db, publish, 3600, max_attempts=3) == [poison]  # stopped once: back in line
    with db.write() as session:
        assert job_state.claim(session, poison, "w2", 60, max_attempts=3) == 2
    _lapse(db, poison)
    with db.write() as session:  # a redelivered message takes the lapsed job over: stopped twice
        assert job_state.claim(session, poison, "w3", 60, max_attempts=3) == 3
    _lapse(db, poison)
    with db.write() as session:  # a third stop is the last: no worker may take it over again
        assert job_state.claim(session, poison, "w4", 60, max_attempts=3) is None
    assert job_state.requeue_lost(db, publish, 3600, max_attempts=3) == []
    with db.read() as session:
        job = session.get(Job, poison)
    assert (job.status, job.stopped_attempts, job.lease_until) == ("failed", 3, None)
    assert job.error == ("the worker stopped 3 times while rendering this job; "
                         "it may need more memory than the worker has")
    assert job_state.dispatch_all(db, publish, concurrency=1) == [next_job]


def test_transient_releases_are_not_counted_as_stopped_attempts(db_url):
    db = Database(db_url)
    _, (job_id,) = _member_with_jobs(db, 1)
    for attempt in range(1, 5):
        with db.write() as session:
            assert job_state.claim(session, job_id, "w", 60, max_attempts=2) == attempt
            assert job_state.release(session, job_id, attempt)
    with db.read() as session:
        job = session.get(Job, job_id)
    assert (job.status, job.stopped_attempts) == ("queued", 0)


def test_an_enrollment_that_keeps_stopping_fails_its_voice_too(db_url):
    from shared.tables import Voice

    db = Database(db_url)
    member = Member(name=f"m-{time.monotonic_ns()}")
    voice = Voice(member_id=member.id, name="v", language="zh", transcript="x")
    job = Job(member_id=member.id, voice_id=voice.id, kind="enroll")
    with db.write() as session:
        session.add(member)
        session.flush()
        session.add_all([voice, job])
    with db.write() as session:
        assert job_state.claim(session, job.id, "w", 60, max_attempts=1) == 1
    _lapse(db, job.id)
    job_state.requeue_lost(db, lambda d: None, 3600, max_attempts=1)
    with db.read() as session:
        failed_job, failed_voice = session.get(Job, job.id), session.get(Voice, voice.id)
    assert failed_job.status == "failed" and "the worker stopped once while enrolling this voice" in failed_job.error
    assert (failed_voice.status, failed_voice.error) == ("failed", failed_job.error)


def test_a_column_added_since_a_table_was_created_is_added_on_open(db_url):
    from sqlalchemy import text

    db = Database(db_url)
    with db.write_engine.begin() as conn:
        conn.execute(text('ALTER TABLE job DROP COLUMN "stopped_attempts"'))
    assert "stopped_attempts" not in {c["name"] for c in inspect(db.write_engine).get_columns("job")}
    reopened = Database(db_url)
    assert "stopped_attempts" in {c["name"] for c in inspect(reopened.write_engine).get_columns("job")}
    _, (job_id,) = _member_with_jobs(reopened, 1)
    with reopened.read() as session:
        assert session.get(Job, job_id).stopped_attempts == 0


def test_an_unclaimed_dispatch_is_published_again_after_gaps_that_grow(db_url):
    db = Database(db_url)
    t = time.time()
    _, (job_id,) = _member_with_jobs(db, 1, dispatched_at=t - 40)
    published: list[str] = []
    publish = lambda d: published.append(d.job_id) if d.job_id == job_id else None  # noqa: E731
    # (On PostgreSQL other tests' rows share the database: look at this job only.)
    assert job_id in job_state.requeue_lost(db, publish, redeliver_after_s=30)
    assert job_id not in job_state.requeue_lost(db, publish, redeliver_after_s=30)  # not again at once
    with db.read() as session:
        job = session.get(Job, job_id)
    assert job.dispatched_at == pytest.approx(t - 40)  # its place in the broker's line is kept
    assert job.redispatch_at - t == pytest.approx(40, abs=2)  # the next gap is as long as it has waited
    with db.write() as session:
        session.exec(update(Job).where(Job.id == job_id).values(dispatched_at=t - 5000, redispatch_at=t - 1))
    assert job_id in job_state.requeue_lost(db, publish, redeliver_after_s=30)
    with db.read() as session:
        job = session.get(Job, job_id)
    assert job.redispatch_at - t == pytest.approx(job_state.REDISPATCH_MAX_GAP_S, abs=2)  # capped
    with db.write() as session:  # claimed: no more copies, and a new dispatch starts the clock again
        assert job_state.claim(session, job_id, "w", 60) == 1
    assert job_id not in job_state.requeue_lost(db, publish, redeliver_after_s=0)
    assert published == [job_id, job_id]


def test_a_never_dispatched_job_is_not_published_by_the_redispatch(db_url):
    db = Database(db_url)
    _, (job_id,) = _member_with_jobs(db, 1, redispatch_at=time.time() - 100)
    assert job_id not in job_state.requeue_lost(db, lambda d: None, redeliver_after_s=30)
    assert job_id not in job_state.requeue_lost(db, lambda d: None, redeliver_after_s=0)


def test_a_retry_of_the_same_task_takes_its_own_unreleased_job_back_at_once(db_url):
    db = Database(db_url)
    _, (job_id,) = _member_with_jobs(db, 1)
    me, other = "w1@host:41:task-a", "w2@host:42:task-b"
    with db.write() as session:
        assert job_state.claim(session, job_id, me, 60, 3, resume_own=True) == 1
    with db.write() as session:  # the release failed (database down); the lease is still live
        assert job_state.claim(session, job_id, other, 60, 3, resume_own=True) is None
        assert job_state.claim(session, job_id, me, 60, 3) is None  # a name alone proves nothing
        assert job_state.claim(session, job_id, me, 60, 3, resume_own=True) == 2
    with db.read() as session:
        assert session.get(Job, job_id).stopped_attempts == 0


def test_a_process_forked_while_a_thread_opens_a_database_can_open_one_too(tmp_path):
    """Regression: a Celery pool child forked while the sweep thread held the databases' lock hung
    on its first job, for ever."""
    import os
    import signal

    from shared import db as databases

    with databases._lock:  # a parent thread is opening a database at the moment of the fork
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(10)  # a hang ends the child with SIGALRM instead of blocking the test
            code = 1
            try:
                databases.get_database(f"sqlite:///{tmp_path / 'child.sqlite3'}")
                code = 0
            finally:
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
