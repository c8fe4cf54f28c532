"""A job's life as atomic state changes, and the fair order in which jobs reach the workers.

Every change is one ``UPDATE ... WHERE`` naming the state it starts from, so two processes racing
for the same job cannot both win, on SQLite or PostgreSQL, without row locks. A running job belongs
to the worker holding its current ``attempt``; that worker renews a lease while it works. When the
lease runs out (the worker was killed) the job is queued again and another worker takes it over;
whatever the old worker tries afterwards matches no row and changes nothing.

Fairness: a member has at most ``member_concurrency`` jobs per lane in the broker or running at
once; the rest wait in the database and are handed to the broker one by one as earlier ones end.
A long backlog of one member therefore never sits in front of another member's entry, and the
interactive lane (short entries, enrollments) is published with a higher broker priority.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from sqlalchemy import and_, case, delete, false, func, or_, select, update
from sqlmodel import Session

from shared.db import Database
from shared.tables import (
    BACKGROUND,
    CANCELLED,
    ENROLL,
    ENROLLING,
    FAILED,
    FINETUNE,
    INTERACTIVE,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    SYNTHESIS,
    VOICE_FAILED,
    Job,
    JobChunk,
    Member,
    Voice,
    now,
)

PRIORITY = {INTERACTIVE: 0, BACKGROUND: 6}  # Redis transport: lower numbers are served first
REDISPATCH_MAX_GAP_S = 600.0  # the longest wait between copies of a dispatch nobody has claimed


@dataclass(frozen=True)
class Dispatch:
    """What a dispatcher needs to hand a job to a worker: ids and routing only, never text."""

    job_id: str
    kind: str
    queue: str
    priority: int


Publish = Callable[[Dispatch], None]


# --- the worker's side -------------------------------------------------------------------------

def claim(session: Session, job_id: str, worker: str, lease_s: float,
          max_attempts: int | None = None, resume_own: bool = False) -> int | None:
    """Take a queued job (or one whose worker's lease ran out). Returns our attempt number or None.

    Taking over a lapsed lease counts a stopped attempt. With ``max_attempts``, a job whose worker
    already stopped ``max_attempts - 1`` times is not taken over: the sweep fails it instead.
    ``resume_own``: ``worker`` names one task delivery in one process (a retry of the same Celery
    task keeps its id), so a running job held under that very name is an earlier try of ours that
    could not give the job back (the database was down): take it again at once, uncounted.
    """
    t = now()
    lapsed = and_(Job.status == RUNNING, Job.lease_until < t)
    if max_attempts is not None:
        lapsed = and_(lapsed, Job.stopped_attempts < max_attempts - 1)
    own = and_(Job.status == RUNNING, Job.worker == worker) if resume_own else false()
    someone_elses = and_(Job.status == RUNNING, Job.worker.is_distinct_from(worker))  # they stopped
    row = session.exec(
        update(Job)
        .where(Job.id == job_id, Job.cancel_requested.is_(False), or_(Job.status == QUEUED, lapsed, own))
        .values(status=RUNNING, attempt=Job.attempt + 1, worker=worker, lease_until=t + lease_s,
                stopped_attempts=Job.stopped_attempts + case((someone_elses, 1), else_=0),
                started_at=func.coalesce(Job.started_at, t), error=None)
        .returning(Job.attempt)
    ).first()
    return None if row is None else int(row[0])


def refund_stop(session: Session, job_id: str) -> bool:
    """Take back one stopped attempt: the worker it was counted against was alive after all."""
    result = session.exec(update(Job).where(Job.id == job_id, Job.status.in_((QUEUED, RUNNING)),
                                            Job.stopped_attempts > 0)
                          .values(stopped_attempts=Job.stopped_attempts - 1))
    return result.rowcount == 1


def stopped_message(kind: str, times: int) -> str:
    """Why a job that kept losing its worker failed (most often: the worker ran out of memory)."""
    doing = {SYNTHESIS: "rendering this job", ENROLL: "enrolling this voice", FINETUNE: "fine-tuning this voice"}
    count = "once" if times == 1 else f"{times} times"
    return (f"the worker stopped {count} while {doing.get(kind, 'running this job')}; "
            "it may need more memory than the worker has")


def _ours(job_id: str, attempt: int):  # noqa: ANN202 - a SQL condition
    return and_(Job.id == job_id, Job.status == RUNNING, Job.attempt == attempt)


def renew(session: Session, job_id: str, attempt: int, lease_s: float) -> bool:
    """Extend our lease. False: the job is no longer ours (taken over, deleted or finished)."""
    result = session.exec(update(Job).where(_ours(job_id, attempt)).values(lease_until=now() + lease_s))
    return result.rowcount == 1


def record_progress(session: Session, job_id: str, attempt: int, done: int, total: int,
                    lease_s: float) -> bool:
    """Store chunks done/total (renewing the lease) and a row for the finished chunk."""
    result = session.exec(update(Job).where(_ours(job_id, attempt))
                          .values(progress_done=done, progress_total=total, lease_until=now() + lease_s))
    if result.rowcount != 1:
        return False
    if done > 0:
        index = done - 1
        chunk = session.get(JobChunk, (job_id, index))
        if chunk is None:
            session.add(JobChunk(job_id=job_id, index=index, attempt=attempt))
        else:
            chunk.attempt, chunk.finished_at = attempt, now()
    return True


def record_early_start(session: Session, job_id: str, attempt: int, tokens: int) -> bool:
    """Store when this attempt's render started early (before its first byte is out)."""
    return session.exec(update(Job).where(_ours(job_id, attempt)).values(early_tokens=tokens)).rowcount == 1


def cancel_wanted(session: Session, job_id: str, attempt: int) -> bool:
    """True when the member asked to cancel, or the job stopped being ours (so stop working on it)."""
    row = session.exec(select(Job.status, Job.attempt, Job.cancel_requested).where(Job.id == job_id)).first()
    return row is None or row.cancel_requested or row.status != RUNNING or row.attempt != attempt


def finish(session: Session, job_id: str, attempt: int, **values: object) -> bool:
    """running -> succeeded, with the result's fields. False if the job is no longer ours."""
    values.setdefault("finished_at", now())
    result = session.exec(update(Job).where(_ours(job_id, attempt))
                          .values(status=SUCCEEDED, lease_until=None, **values))
    return result.rowcount == 1


def fail(session: Session, job_id: str, attempt: int, error: str) -> bool:
    result = session.exec(update(Job).where(_ours(job_id, attempt))
                          .values(status=FAILED, error=error[:2000], finished_at=now(), lease_until=None))
    return result.rowcount == 1


def mark_cancelled(session: Session, job_id: str, attempt: int) -> bool:
    result = session.exec(update(Job).where(_ours(job_id, attempt))
                          .values(status=CANCELLED, finished_at=now(), lease_until=None))
    return result.rowcount == 1


def release(session: Session, job_id: str, attempt: int) -> bool:
    """Give a job back to the queue after a transient error; a retry of the task will claim it."""
    result = session.exec(update(Job).where(_ours(job_id, attempt))
                          .values(status=QUEUED, worker=None, lease_until=None))
    return result.rowcount == 1


def next_interactive(session: Session, queue: str, skip: Collection[str] = ()) -> str | None:
    """The interactive job handed to the broker on ``queue`` longest ago and not yet taken by a
    worker (``skip``: ids not to offer again), or None. A paused background render runs it inline
    (see :mod:`worker.lanes`)."""
    waiting = (select(Job.id).where(Job.lane == INTERACTIVE, Job.queue == queue, Job.status == QUEUED,
                                    Job.dispatched_at.is_not(None), Job.cancel_requested.is_(False))
               .order_by(Job.dispatched_at, Job.id).limit(1))
    if skip:
        waiting = waiting.where(Job.id.not_in(list(skip)))
    row = session.exec(waiting).first()
    return None if row is None else str(row[0])


def fail_queued(session: Session, job_id: str, error: str) -> bool:
    """Give up on a job that was released to the queue (its retries ran out)."""
    result = session.exec(update(Job).where(Job.id == job_id, Job.status == QUEUED)
                          .values(status=FAILED, error=error[:2000], finished_at=now()))
    return result.rowcount == 1


# --- the member's side -------------------------------------------------------------------------

def retry(session: Session, job_id: str, member_id: str) -> bool:
    """failed | cancelled -> queued, for a new attempt (the next claim numbers it), with its
    progress, stopped attempts and chunk rows reset. False unless the member's job had ended so."""
    result = session.exec(
        update(Job).where(Job.id == job_id, Job.member_id == member_id, Job.status.in_((FAILED, CANCELLED)))
        .values(status=QUEUED, error=None, finished_at=None, cancel_requested=False, worker=None,
                lease_until=None, dispatched_at=None, redispatch_at=None, stopped_attempts=0,
                progress_done=0, progress_total=0))
    if result.rowcount != 1:
        return False
    session.exec(delete(JobChunk).where(JobChunk.job_id == job_id))
    return True


def request_cancel(session: Session, job_id: str, member_id: str) -> tuple[str, bool] | None:
    """Cancel a queued job at once, or flag a running one (its worker stops between chunks).

    Returns (status afterwards, whether this call changed anything), or None when the member has
    no such job.
    """
    mine = and_(Job.id == job_id, Job.member_id == member_id)
    for _ in range(3):  # the job may move between the two updates; look again
        if session.exec(update(Job).where(mine, Job.status == QUEUED)
                        .values(status=CANCELLED, finished_at=now(), cancel_requested=True)).rowcount:
            return CANCELLED, True
        if session.exec(update(Job).where(mine, Job.status == RUNNING)
                        .values(cancel_requested=True)).rowcount:
            return RUNNING, True
        row = session.exec(select(Job.status).where(mine)).first()
        if row is None:
            return None
        if row[0] not in (QUEUED, RUNNING):
            return row[0], False
    return session.exec(select(Job.status).where(mine)).one()[0], False


# --- handing jobs to workers, fairly -----------------------------------------------------------

def dispatch_member(db: Database, member_id: str, publish: Publish, concurrency: int,
                    lanes: tuple[str, ...] = (INTERACTIVE, BACKGROUND)) -> list[str]:
    """Publish this member's next waiting jobs, up to ``concurrency`` in flight per lane."""
    with db.write() as session:
        chosen = choose_dispatches(session, member_id, concurrency, lanes)
    return publish_all(db, chosen, publish)


def choose_dispatches(session: Session, member_id: str, concurrency: int,
                      lanes: tuple[str, ...] = (INTERACTIVE, BACKGROUND)) -> list[Dispatch]:
    """Mark this member's next waiting jobs as dispatched, in the caller's write transaction.

    The caller publishes them with :func:`publish_all` only after committing: a worker handed a
    job id before the row is committed would not see it, and drop the message.
    """
    # The member row is the mutex: concurrent dispatchers for one member take turns here.
    locked = session.exec(update(Member).where(Member.id == member_id)
                          .values(dispatch_seq=Member.dispatch_seq + 1)).rowcount
    if not locked:
        return []
    in_flight = dict(session.exec(
        select(Job.lane, func.count()).where(
            Job.member_id == member_id, Job.lane.in_(lanes), Job.status.in_((QUEUED, RUNNING)),
            Job.dispatched_at.is_not(None)).group_by(Job.lane)
    ).all())
    t = now()
    chosen: list[Dispatch] = []
    for lane in lanes:
        free = concurrency - in_flight.get(lane, 0)
        if free <= 0:
            continue
        waiting = session.exec(
            select(Job.id, Job.kind, Job.queue, Job.priority)
            .where(Job.member_id == member_id, Job.lane == lane, Job.status == QUEUED,
                   Job.dispatched_at.is_(None))
            .order_by(Job.created_at, Job.id).limit(free)
        ).all()
        if waiting:
            session.exec(update(Job).where(Job.id.in_([row.id for row in waiting]))
                         .values(dispatched_at=t, redispatch_at=None))
        chosen += [Dispatch(row.id, row.kind, row.queue, row.priority) for row in waiting]
    return chosen


def publish_all(db: Database, dispatches: list[Dispatch], publish: Publish) -> list[str]:
    """Publish committed dispatches. One that fails is unmarked, so the next dispatch retries it."""
    published: list[str] = []
    for i, dispatch in enumerate(dispatches):
        try:
            publish(dispatch)
        except Exception:
            with db.write() as session:
                session.exec(update(Job).where(Job.id.in_([d.job_id for d in dispatches[i:]]),
                                               Job.status == QUEUED).values(dispatched_at=None))
            raise
        published.append(dispatch.job_id)
    return published


def dispatch_all(db: Database, publish: Publish, concurrency: int) -> list[str]:
    """Dispatch for every member with jobs waiting (the periodic sweep calls this)."""
    with db.read() as session:
        members = session.exec(
            select(Job.member_id).where(Job.status == QUEUED, Job.dispatched_at.is_(None)).distinct()
        ).all()
    published: list[str] = []
    for (member_id,) in members:
        published += dispatch_member(db, member_id, publish, concurrency)
    return published


def requeue_lost(db: Database, publish: Publish, redeliver_after_s: float,
                 max_attempts: int | None = None) -> list[str]:
    """Bring back jobs whose worker vanished, and re-publish dispatches whose message went missing.

    A running job whose lease ran out goes back to queued (or to cancelled, if that was asked)
    and is published again; with ``max_attempts``, one whose worker has now stopped that many
    times fails instead, which frees its member's lane. A queued job dispatched but not claimed
    within ``redeliver_after_s`` (its message may have been lost with a broker restart) is
    published again, then again after gaps that double up to ``REDISPATCH_MAX_GAP_S``, so a job
    that merely waits its turn in the broker gathers few copies. Duplicates are harmless: the
    claim lets exactly one run. ``redeliver_after_s=0`` publishes every dispatched job again.
    """
    t = now()
    with db.write() as session:
        lapsed = and_(Job.status == RUNNING, Job.lease_until < t)
        session.exec(update(Job).where(lapsed, Job.cancel_requested)
                     .values(status=CANCELLED, finished_at=t, lease_until=None))
        if max_attempts is not None:
            fail_stopped(session, lapsed, max_attempts, t)
        lost = session.exec(
            update(Job).where(lapsed)
            .values(status=QUEUED, worker=None, lease_until=None, dispatched_at=t, redispatch_at=None,
                    stopped_attempts=Job.stopped_attempts + 1)
            .returning(Job.id, Job.kind, Job.queue, Job.priority)
        ).all()
        stale = session.exec(
            update(Job).where(Job.status == QUEUED, _redispatch_due(t, redeliver_after_s))
            .values(redispatch_at=t + _redispatch_gap(t, redeliver_after_s))
            .returning(Job.id, Job.kind, Job.queue, Job.priority)
        ).all()
    # After the commit (see choose_dispatches). If publishing fails here, the job stays queued
    # and dispatched, and the stale check above publishes it again later.
    for row in [*lost, *stale]:
        publish(Dispatch(row.id, row.kind, row.queue, row.priority))
    return [row.id for row in [*lost, *stale]]


def _redispatch_due(t: float, after_s: float):  # noqa: ANN202 - a SQL condition
    if after_s <= 0:
        return Job.dispatched_at.is_not(None)
    return and_(Job.dispatched_at.is_not(None), func.coalesce(Job.redispatch_at, Job.dispatched_at + after_s) < t)


def _redispatch_gap(t: float, after_s: float):  # noqa: ANN202 - a SQL expression
    """The wait before the next copy: as long as the job has waited so far, within bounds."""
    waited = t - Job.dispatched_at
    longest = max(after_s, REDISPATCH_MAX_GAP_S)
    return case((waited < after_s, after_s), (waited > longest, longest), else_=waited)


def fail_stopped(session: Session, lapsed, max_attempts: int, t: float) -> list[str]:  # noqa: ANN001 - a SQL condition
    """Fail the lapsed jobs whose worker has now stopped ``max_attempts`` times (and the voice of
    such an enrollment). Returns their ids."""
    message = case(*((Job.kind == kind, stopped_message(kind, max_attempts)) for kind in (SYNTHESIS, ENROLL, FINETUNE)),
                   else_=stopped_message("", max_attempts))
    rows = session.exec(
        update(Job).where(lapsed, Job.stopped_attempts >= max_attempts - 1)
        .values(status=FAILED, finished_at=t, lease_until=None, stopped_attempts=Job.stopped_attempts + 1,
                error=message)
        .returning(Job.id, Job.kind, Job.voice_id)
    ).all()
    voices = [row.voice_id for row in rows if row.kind == ENROLL and row.voice_id]
    if voices:
        session.exec(update(Voice).where(Voice.id.in_(voices), Voice.status == ENROLLING)
                     .values(status=VOICE_FAILED, error=stopped_message(ENROLL, max_attempts), updated_at=t))
    return [row.id for row in rows]


def queue_position(session: Session, job: Job) -> int | None:
    """How many jobs will start before this one (0: it is next); None unless it is queued."""
    if job.status != QUEUED:
        return None
    waiting = and_(Job.status == QUEUED, Job.queue == job.queue, Job.dispatched_at.is_not(None), Job.id != job.id)
    if job.dispatched_at is not None:
        ahead = or_(Job.priority < job.priority,
                    and_(Job.priority == job.priority, Job.dispatched_at < job.dispatched_at))
        return session.exec(select(func.count()).select_from(Job).where(waiting, ahead)).one()[0]
    in_broker = session.exec(select(func.count()).select_from(Job)
                             .where(waiting, Job.priority <= job.priority)).one()[0]
    own_before = session.exec(select(func.count()).select_from(Job).where(
        Job.member_id == job.member_id, Job.lane == job.lane, Job.status == QUEUED,
        Job.dispatched_at.is_(None), Job.created_at < job.created_at)).one()[0]
    return in_broker + own_before
