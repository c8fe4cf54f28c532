"""Running one job: claim it, do the work of its kind, store the result, record the outcome.

The Celery tasks and the embedded mode both call :func:`run_job`. It is safe to call any number of
times for the same job: only the caller whose claim succeeds works on it, the result goes to a key
made from the job's id, and only the current attempt may record the outcome.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from shared import job_state, keys, service, voice_styles
from shared.db import Database
from shared.pieces import PieceChannel
from shared.service import Backend
from shared.settings import Settings
from shared.storage import CONTENT_TYPES, ObjectWriter, StorageUnavailable
from shared.tables import (
    CANCELLED,
    ENROLL,
    FAILED,
    FINETUNE,
    INTERACTIVE,
    READY,
    SUCCEEDED,
    SYNTHESIS,
    Job,
    Voice,
    VoiceConsent,
    now,
)
from worker import enrollment as enrollment_jobs
from worker import pipeline
from worker import styles as style_jobs
from worker.cancel import cancel_checker
from worker.chunks import StorageChunkCache, VoiceChunkCache
from worker.claim import Lease, LostJob, claim
from worker.dataset import voice_items
from worker.lanes import pause_point
from worker.progress import progress_writer

log = logging.getLogger(__name__)
POISON_EXIT_CODE = 137  # what a SIGKILL-ed process reports, as after an out-of-memory kill
RESUME_READ_S = 0.05  # how long a resumed attempt waits for more of the earlier pieces (they are all there)
SIGNED_PIECE = 1 << 20  # a C2PA-signed file is uploaded from its spool this much at a time


class TransientError(Exception):
    """Storage or the database failed in a way that may pass; the job was given back to the queue."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, StorageUnavailable | OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Context:
    backend: Backend
    job: Job
    lease: Lease


def run_job(backend: Backend, job_id: str, worker: str | None = None) -> str:
    """Run a job if it can be claimed. Returns what happened: succeeded, failed, cancelled, skipped
    or lost. A background synthesis may run waiting interactive jobs inline, through this very
    function, while it pauses (see :mod:`worker.lanes`)."""
    if not keys.is_id(job_id):
        return "skipped"
    db, settings = backend.db, backend.settings
    try:
        # A caller-given name identifies one task delivery (see job_state.claim's resume_own).
        attempt = claim(db, job_id, worker or worker_name(), settings.job_lease_s, settings.job_max_attempts,
                        resume_own=worker is not None)
        if attempt is None:
            return "skipped"  # finished, cancelled, deleted, or another worker holds a live claim
        with db.read() as session:
            job = session.get(Job, job_id)
    except Exception as exc:
        if is_transient(exc):  # the database is down: try again later, like an outage mid-job
            raise TransientError(str(exc)) from exc
        raise
    if job is None:
        return "lost"
    try:
        with Lease(db, job_id, attempt, settings.job_lease_s, settings.job_heartbeat_s) as lease:
            outcome = _run_kind(Context(backend, job, lease))
        if outcome == "lost":
            _not_stopped(db, job_id)
    finally:
        try:
            backend.dispatch(job.member_id)  # a slot of this member's lane is free now
        except Exception:  # the sweep dispatches later if the database is down right now
            log.warning("dispatch after job %s failed", job_id, exc_info=True)
    return outcome


def _not_stopped(db: Database, job_id: str) -> None:
    """Our lease lapsed while we were alive (a stall, a database outage) and that was counted as a
    stopped attempt: take it back, so only real crashes count towards job_max_attempts."""
    try:
        with db.write() as session:
            job_state.refund_stop(session, job_id)
    except Exception:
        log.warning("could not correct the stopped attempts of job %s", job_id, exc_info=True)


def _run_kind(ctx: Context) -> str:
    from engine.errors import Cancelled, EngineError

    job, db = ctx.job, ctx.backend.db
    try:
        if job.kind == ENROLL and job.params.get("enrollment_id"):  # a guided-enrollment take or finish
            return enrollment_jobs.run(ctx)
        if job.kind == ENROLL and job.params.get("style_id"):  # a voice's new style
            return style_jobs.run(ctx)
        if job.kind == ENROLL:
            return _enroll(ctx)
        if job.kind == SYNTHESIS:
            return _synthesize(ctx)
        if job.kind == FINETUNE:
            return _finetune(ctx)
        raise EngineError(f"unknown job kind {job.kind!r}")
    except Cancelled:
        with db.write() as session:
            ok = job_state.mark_cancelled(session, job.id, ctx.lease.attempt)
        return CANCELLED if ok else "lost"
    except LostJob:
        return "lost"
    except BaseException as exc:
        if is_transient(exc):
            log.warning("job %s: transient error, giving it back: %s", job.id, exc)
            try:
                with db.write() as session:
                    job_state.release(session, job.id, ctx.lease.attempt)
            except Exception:  # the lease runs out instead, and the sweep requeues it
                log.warning("could not release job %s", job.id, exc_info=True)
            raise TransientError(str(exc)) from exc
        if not isinstance(exc, Exception):
            raise  # SystemExit, KeyboardInterrupt: the worker is going away; the lease brings it back
        if isinstance(exc, EngineError):
            message = str(exc)
        elif type(exc).__name__ == "SoftTimeLimitExceeded":  # Celery's, raised inside the task
            message = f"the job ran longer than the limit of {ctx.backend.settings.task_time_limit_s} s"
        else:
            log.exception("job %s failed", job.id)
            message = f"internal error ({type(exc).__name__}): {exc}"
        with db.write() as session:
            failed = job_state.fail(session, job.id, ctx.lease.attempt, message)
            if failed and job.kind == ENROLL and job.voice_id:
                service.voice_failed(session, job.voice_id, message)
        return FAILED if failed else "lost"


def _voice(session: Session, job: Job) -> Voice:
    from engine.errors import EngineError

    voice = session.get(Voice, job.voice_id) if job.voice_id else None
    if voice is None or voice.member_id != job.member_id:
        if session.get(Job, job.id) is None:
            raise LostJob(job.id)  # the voice is being deleted, and this job with it
        raise EngineError(f"voice {job.voice_id} no longer exists")
    return voice


def _enroll(ctx: Context) -> str:
    backend, job, lease = ctx.backend, ctx.job, ctx.lease
    with backend.db.read() as session:
        voice = _voice(session, job)
    audio = backend.storage.get(voice.reference_key)
    progress = progress_writer(lease)
    progress(0, 1)
    profile = pipeline.enroll(backend.settings, audio, voice.transcript, voice.language)
    key = keys.profile_key(job.member_id, voice.id)
    lease.check()
    backend.storage.put(key, profile)
    with backend.db.write() as session:
        done = job_state.finish(session, job.id, lease.attempt, progress_done=1, progress_total=1)
        if done:
            service.voice_ready(session, voice.id, key, len(profile))
    if not done:
        _drop_orphan(backend, job, key)
        return "lost"
    pipeline.forget_voice(backend.settings, voice.id)
    return SUCCEEDED


def _synthesize(ctx: Context) -> str:
    """Render, streaming each encoded piece to the job's piece channel and into the stored object
    as it is made; listeners hear why the job stopped when it fails or is cancelled."""
    channel = service.piece_channel(ctx.backend)
    try:
        return _synthesize_streaming(ctx, channel)
    except Exception as exc:
        if not (is_transient(exc) or isinstance(exc, LostJob)):  # else another attempt carries on
            _end_stream(channel, ctx.job.id, _stop_reason(exc))
        raise


def _end_stream(channel: PieceChannel, job_id: str, error: str | None = None) -> None:
    """The end marker; listeners of a channel that is down fall back on the job's row instead."""
    try:
        channel.finish(job_id, error=error)
    except Exception:
        log.warning("job %s: could not end its piece stream", job_id, exc_info=True)


def _stop_reason(exc: Exception) -> str:
    from engine.errors import Cancelled

    return "cancelled" if isinstance(exc, Cancelled) else f"failed: {exc}"


def _synthesize_streaming(ctx: Context, channel: PieceChannel) -> str:
    from engine.errors import Cancelled, EngineError

    backend, job, lease = ctx.backend, ctx.job, ctx.lease
    settings = backend.settings
    _exit_if_poisoned(settings.chaos_poison_marker, job)
    with backend.db.read() as session:
        voice = _voice(session, job)
    if voice.status != READY or not voice.profile_key:
        raise EngineError(f"voice {voice.id} has no profile yet (status {voice.status})")
    params = dict(job.params)
    profile_key = _style_profile_key(backend, voice, params.pop("style", None)) or voice.profile_key
    profile = pipeline.load_profile(settings, voice.id, profile_key, lambda: backend.storage.get(profile_key))
    finetune_key = voice.finetune_key
    engine = pipeline.engine_for(settings, voice.id, finetune_key,
                                 lambda: backend.storage.get(finetune_key or ""))
    chunks = (VoiceChunkCache(backend.storage, job.member_id, voice.id, job.id) if settings.embedded
              else StorageChunkCache(backend.storage, job.member_id, job.id))
    key = keys.result_key(job.member_id, job.id, job.format)
    with backend.storage.open_writer(key, CONTENT_TYPES[job.format]) as out:
        try:
            stored = pipeline.render_streaming(
                settings, job.text or "", profile, params, job.format, job.mark, job.id,
                on_piece=PiecePublisher(channel, job.id, out, resumed=lease.attempt > 1),
                should_cancel=cancel_checker(lease), on_progress=progress_writer(lease, settings.worker_chunk_delay_s),
                chunk_cache=chunks, engine=engine,
                pause_point=pause_point(lease, job, settings.yield_to_interactive, lambda i: run_job(backend, i)),
                opening=_opening(settings, job, lease))
        except (Cancelled, EngineError):
            chunks.clear()  # this job will not resume: it ends cancelled or failed
            raise
        lease.check()
        _commit(backend, out, key, job.format, stored)
    if chunks.reused:
        log.info("job %s: reused %d chunks of an earlier attempt", job.id, chunks.reused)
    chunks.clear()  # before the job reads as finished, so a finished job owns exactly one object
    finished = now()
    with backend.db.write() as session:
        done = job_state.finish(session, job.id, lease.attempt, result_key=key, result_bytes=stored.size,
                               chunks_reused=chunks.reused,
                               duration_s=stored.duration_s, finished_at=finished,
                               expires_at=finished + settings.result_ttl_s)
    if not done:
        _drop_orphan(backend, job, key)
        return "lost"
    _end_stream(channel, job.id)
    return SUCCEEDED


def _opening(settings: Settings, job: Job, lease: Lease) -> pipeline.Opening:
    """Interactive syntheses open early (see :class:`worker.pipeline.Opening`); the moment is put on
    record before the first byte, so that a takeover streams the same bytes."""
    if job.lane != INTERACTIVE or not settings.interactive_early_start:
        return pipeline.Opening()

    def record(tokens: int) -> None:
        with lease.db.write() as session:
            if not job_state.record_early_start(session, job.id, lease.attempt, tokens):
                raise LostJob(job.id)

    return pipeline.Opening(early_start=True, replay_at=job.early_tokens, on_early_start=record)


def _style_profile_key(backend: Backend, voice: Voice, name: str | None) -> str | None:
    """The profile of the style the job was queued with (None: the voice's enrollment profile)."""
    from engine.errors import EngineError

    if name is None:
        return None
    with backend.db.read() as session:
        style = voice_styles.by_name(session, voice.id, name)
    if style is None or not style.profile_key:
        raise EngineError(f"voice {voice.id} no longer has the style {name!r} this job was queued with")
    return style.profile_key


def _exit_if_poisoned(marker: str | None, job: Job) -> None:
    """The chaos suite's poison job: this process dies at once, with no chance to clean up, as
    the kernel's OOM killer would end it."""
    if marker and marker in (job.text or ""):
        log.warning("job %s carries the chaos poison marker: this worker process exits now", job.id)
        os._exit(POISON_EXIT_CODE)


def _commit(backend: Backend, out: ObjectWriter, key: str, fmt: str, stored: pipeline.StoredFile) -> None:
    """The streamed object with its labelled head (only the metadata: within what the writer holds);
    a C2PA-signed file (the manifest rewrites the whole file) is written again from its spooled file."""
    if stored.file is None:
        out.commit(stored.head, stored.replace)
        return
    out.abort()
    try:
        with backend.storage.open_writer(key, CONTENT_TYPES[fmt]) as signed:
            while piece := stored.file.read(SIGNED_PIECE):
                signed.write(piece)
            signed.commit()
    finally:
        stored.file.close()


class PiecePublisher:
    """``on_piece`` for one attempt: each encoded piece to the stored object and, numbered from 0,
    to the job's channel. The channel is for live listeners only: when Redis fails, the job goes on
    without them (the stored file stays the truth) rather than fail.

    A ``resumed`` attempt (after a crash, or a lease lost to a stall) makes the same bytes again, cut
    into pieces elsewhere (cached chunks come whole): it skips the bytes earlier attempts already
    published and numbers its pieces on from theirs, so a listener's stream stays the stored file."""

    def __init__(self, channel: PieceChannel, job_id: str, out: ObjectWriter, resumed: bool = False) -> None:
        self.channel, self.job_id, self.out = channel, job_id, out
        self.index = 0
        self.skip = 0  # bytes of this attempt's stream that listeners already have
        self.live = True
        if resumed:
            self._continue_channel()

    def _continue_channel(self) -> None:
        try:
            for piece in self.channel.read(self.job_id, block_s=RESUME_READ_S):
                if piece.end:
                    break
                self.index, self.skip = self.index + 1, self.skip + len(piece.data)
        except Exception:
            log.warning("job %s: cannot read its earlier pieces; no live stream", self.job_id, exc_info=True)
            self.live = False

    def __call__(self, data: bytes, progress: float) -> None:
        self.out.write(data)
        if self.skip:
            dropped = min(self.skip, len(data))
            data, self.skip = data[dropped:], self.skip - dropped
        if not data:
            return
        if self.live:
            try:
                self.channel.publish(self.job_id, self.index, progress, data)
            except Exception:
                log.warning("job %s: cannot publish pieces; listeners fall back to the stored file",
                            self.job_id, exc_info=True)
                self.live = False
        self.index += 1


def _finetune(ctx: Context) -> str:
    backend, job, lease = ctx.backend, ctx.job, ctx.lease
    with backend.db.read() as session:
        voice = _voice(session, job)
        record = session.get(VoiceConsent, voice.id)
    items = voice_items(backend.storage, voice, record)
    weights = pipeline.finetune(backend.settings, items, dict(job.params),
                                on_progress=progress_writer(lease), should_cancel=cancel_checker(lease))
    key = keys.finetune_key(job.member_id, voice.id, job.id)
    lease.check()
    backend.storage.put(key, weights)
    with backend.db.write() as session:
        done = job_state.finish(session, job.id, lease.attempt)
        previous = voice.finetune_key
        if done:
            voice = session.get(Voice, voice.id)
            if voice is not None:
                voice.finetune_key, voice.finetune_bytes, voice.updated_at = key, len(weights), now()
                session.add(voice)
    if not done:
        _drop_orphan(backend, job, key)
        return "lost"
    if previous and previous != key:
        backend.storage.delete(previous)
    pipeline.forget_voice(backend.settings, voice.id)
    return SUCCEEDED


def _drop_orphan(backend: Backend, job: Job, key: str) -> None:
    """We wrote ``key`` but could not record it. Delete it unless another attempt of the job owns it."""
    with backend.db.read() as session:
        current = session.get(Job, job.id)
    if current is None or current.status in (CANCELLED, FAILED):
        backend.storage.delete(key)
