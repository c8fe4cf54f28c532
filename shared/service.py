"""What members can do, as plain functions over the database and storage: the API's service layer.

The HTTP routes, the embedded CLI and the tests all call these. Errors are :class:`ServiceError`
subclasses that say what kind of refusal it is, with a message meant for the member. Ownership is
part of every lookup: another member's voice or job is "not found", exactly like a missing one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from shared import consent, job_state, keys, voice_styles
from shared.audio_limits import AudioLimits, AudioRefused, check_upload
from shared.db import Database, get_database
from shared.pieces import MemoryPieceChannel, PieceChannel, RedisPieceChannel
from shared.schemas import (
    PARAM_NAMES,
    VOICE_LANGS,
    FinetuneRequest,
    JobOut,
    MemberOut,
    Progress,
    Result,
    SynthesisRequest,
    VoiceOut,
    timestamp,
)
from shared.settings import Settings
from shared.storage import Storage, make_storage
from shared.tables import (
    ACTIVE,
    BACKGROUND,
    CANCELLED,
    DELETING,
    ENROLL,
    ENROLLING,
    FAILED,
    FINETUNE,
    INTERACTIVE,
    READY,
    SUCCEEDED,
    SYNTHESIS,
    VOICE_FAILED,
    ApiToken,
    EnrollmentSession,
    EnrollmentTake,
    Job,
    JobChunk,
    Member,
    Voice,
    VoiceConsent,
    VoiceStyle,
    now,
)

REFERENCE_SECONDS = (3.0, 10.0)  # what the engine accepts as a reference clip
TRANSCRIPT_MAX_CHARS = 500
DELETE_CONFIRM_TTL_S = 600
TOKEN_PREFIX = "edy_"
log = logging.getLogger(__name__)


class ServiceError(Exception):
    """A request the service turns down; ``detail`` is a sentence the member can act on.

    The kinds below say what went wrong, not how to answer it: :mod:`producer.api.errors` maps each
    to its HTTP status.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Invalid(ServiceError):
    """The request itself is wrong (a bad value, a missing field)."""


class NotFoundError(ServiceError):
    """No such thing of the member's (another member's things are "not found" too)."""


class Conflict(ServiceError):
    """Clashes with the current state: already exists, already finished, key reused."""


class Forbidden(ServiceError):
    """Not allowed for this member (an admin's action, or storage full)."""


class TooLarge(ServiceError):
    """An upload over the size limit."""


class UnsupportedMedia(ServiceError):
    """An upload that is not audio we accept."""


class Unavailable(ServiceError):
    """This installation cannot do it now or at all (a part missing from the build, a service down)."""


class QuotaExceeded(ServiceError):
    """A quota is reached; trying again after ``retry_after_s`` seconds can succeed."""

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


@dataclass
class Backend:
    """Everything a request or a job needs: settings, database, storage, and how to reach workers."""

    settings: Settings
    db: Database
    storage: Storage
    publish: job_state.Publish

    def dispatch(self, member_id: str, lanes: tuple[str, ...] = (INTERACTIVE, BACKGROUND)) -> list[str]:
        """Hand the member's next jobs to the workers. A broker that is down only delays them: the
        jobs stay queued and the workers' sweep dispatches them once it is back."""
        try:
            return job_state.dispatch_member(self.db, member_id, self.publish, self.settings.member_concurrency,
                                            lanes)
        except Exception:
            log.warning("could not dispatch jobs of member %s now; the sweep will", member_id, exc_info=True)
            return []


_memory_pieces = MemoryPieceChannel()
_redis_pieces: dict[str, RedisPieceChannel] = {}


def piece_channel(backend: Backend) -> PieceChannel:
    """Where a synthesis's audio pieces travel: the broker's Redis in server mode, memory in this
    process in the embedded mode (its executor runs here, beside the API that reads them)."""
    s = backend.settings
    if s.embedded:
        return _memory_pieces
    url = s.broker_url or ""
    if url not in _redis_pieces:
        import redis

        _redis_pieces[url] = RedisPieceChannel(redis.Redis.from_url(url), s.result_ttl_s)
    return _redis_pieces[url]


def open_backend(settings: Settings, publish: job_state.Publish | None = None) -> Backend:
    return Backend(settings, get_database(settings.sqlalchemy_url), make_storage(settings),
                   publish or (lambda _dispatch: None))


# --- members and tokens ------------------------------------------------------------------------

def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_member(backend: Backend, name: str, admin: bool = False) -> tuple[Member, str]:
    """A new member and their API token (returned once; only its hash is kept)."""
    name = name.strip()
    if not name:
        raise Invalid("name is empty")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    member = Member(name=name, is_admin=admin)
    try:
        with backend.db.write() as session:
            session.add(member)
            session.flush()
            session.add(ApiToken(member_id=member.id, token_hash=hash_token(token)))
    except IntegrityError as exc:
        raise Conflict(f"a member named {name!r} already exists") from exc
    return member, token


def authenticate(backend: Backend, token: str) -> Member | None:
    with backend.db.read() as session:
        return session.exec(
            select(Member).join(ApiToken, ApiToken.member_id == Member.id)
            .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked.is_(False))
        ).scalars().first()


def first_member(backend: Backend) -> Member | None:
    with backend.db.read() as session:
        return session.exec(select(Member).order_by(Member.created_at)).scalars().first()


# --- quotas ------------------------------------------------------------------------------------

def _usage(session: Session, member_id: str, since: float) -> tuple[int, int, float | None, int]:
    """(jobs queued or running, characters synthesised since ``since``, the oldest of those, bytes
    stored), read in one round trip."""
    def scalar(stmt):  # noqa: ANN001, ANN202
        return stmt.scalar_subquery()

    row = session.exec(select(
        scalar(select(func.count()).select_from(Job).where(Job.member_id == member_id, Job.status.in_(ACTIVE))),
        scalar(select(func.coalesce(func.sum(Job.chars), 0)).where(
            Job.member_id == member_id, Job.kind == SYNTHESIS, Job.created_at > since)),
        scalar(select(func.min(Job.created_at)).where(
            Job.member_id == member_id, Job.kind == SYNTHESIS, Job.created_at > since)),
        scalar(select(func.coalesce(func.sum(Voice.reference_bytes + Voice.profile_bytes + Voice.finetune_bytes), 0))
               .where(Voice.member_id == member_id)),
        scalar(select(func.coalesce(func.sum(Job.result_bytes), 0))
               .where(Job.member_id == member_id, Job.result_key.is_not(None))),
        scalar(select(func.coalesce(func.sum(VoiceStyle.reference_bytes + VoiceStyle.profile_bytes), 0))
               .where(VoiceStyle.member_id == member_id)),
        # Takes and consent recordings of enrollment sessions that still hold their audio.
        scalar(select(func.coalesce(func.sum(EnrollmentTake.audio_bytes), 0))
               .join(EnrollmentSession, EnrollmentSession.id == EnrollmentTake.session_id)
               .where(EnrollmentSession.member_id == member_id, EnrollmentTake.audio_key.is_not(None))),
    )).one()
    return int(row[0]), int(row[1]), row[2], sum(int(v) for v in row[3:])


def storage_used(session: Session, member_id: str) -> int:
    return _usage(session, member_id, now())[3]


def member_usage(session: Session, member_id: str, since: float) -> tuple[int, int, float | None, int]:
    """The figures the quotas are checked against (see ``_usage``), for the household admin page."""
    return _usage(session, member_id, since)


def _check_quotas(backend: Backend, session: Session, member_id: str, chars: int = 0,
                  new_bytes: int = 0) -> None:
    s = backend.settings
    since = now() - 86400
    active, used, oldest, used_bytes = _usage(session, member_id, since)
    if active >= s.quota_queued_jobs:
        raise QuotaExceeded(f"you already have {active} jobs queued or running (the limit is "
                            f"{s.quota_queued_jobs}); wait for some to finish or cancel them",
                            retry_after_s=60)
    if chars and used + chars > s.quota_chars_per_day:
        wait = int((oldest or since) + 86400 - now()) + 1
        raise QuotaExceeded(f"this entry has {chars} characters and you have used {used} of your "
                            f"{s.quota_chars_per_day} characters in the last 24 hours",
                            retry_after_s=max(wait, 1))
    if used_bytes + new_bytes > s.quota_storage_bytes:
        raise Forbidden(f"your storage is full ({used_bytes} of {s.quota_storage_bytes} bytes used); "
                        "delete voices you no longer need or wait for old results to expire")


# --- voices ------------------------------------------------------------------------------------


def inspect_reference(audio: bytes, max_bytes: int) -> float:
    """Check an uploaded recording before anything is stored; returns its decoded duration in seconds.

    Bounded before decoding (see :mod:`shared.audio_limits`): a small file that decodes to hours is
    refused after at most the longest accepted reference has been decoded."""
    low, high = REFERENCE_SECONDS
    try:
        return check_upload(audio, AudioLimits(max_bytes, low, high)).seconds
    except AudioRefused as exc:
        error = {"size": TooLarge, "format": UnsupportedMedia}.get(exc.reason, Invalid)
        raise error(str(exc)) from exc


def create_voice(backend: Backend, member: Member, audio: bytes, transcript: str, language: str,
                 name: str) -> tuple[Voice, Job]:
    """Store the recording and queue the enrollment job that turns it into a voice profile."""
    transcript, name = transcript.strip(), name.strip()
    if not transcript:
        raise Invalid("transcript is empty: type what the recording says")
    if len(transcript) > TRANSCRIPT_MAX_CHARS:
        raise Invalid(f"transcript has {len(transcript)} characters; the limit is {TRANSCRIPT_MAX_CHARS}")
    if language not in VOICE_LANGS:
        raise Invalid(f"language {language!r} is not one of {', '.join(VOICE_LANGS)}")
    if not name or len(name) > 100:
        raise Invalid("name must be 1 to 100 characters")
    if not backend.settings.allow_legacy_voices:
        raise Forbidden("a one-clip upload has no recorded consent: enroll your voice with a consent "
                        "recording instead (POST /v1/enrollments, or `echodiary enroll`)")
    inspect_reference(audio, backend.settings.max_upload_bytes)
    with backend.db.read() as session:
        _check_quotas(backend, session, member.id, new_bytes=len(audio))

    voice = Voice(member_id=member.id, name=name, language=language, transcript=transcript)
    voice.reference_key = keys.reference_key(member.id, voice.id)
    voice.reference_bytes = len(audio)
    job = Job(member_id=member.id, voice_id=voice.id, kind=ENROLL, lane=INTERACTIVE,
              priority=job_state.PRIORITY[INTERACTIVE])
    backend.storage.put(voice.reference_key, audio)
    try:
        with backend.db.write() as session:
            session.add(voice)
            session.add(job)
    except BaseException:
        backend.storage.delete(voice.reference_key)  # leave nothing behind
        raise
    backend.dispatch(member.id, (INTERACTIVE,))
    return voice, job


def _own_voice(session: Session, member: Member, voice_id: str) -> Voice:
    voice = session.get(Voice, voice_id) if keys.is_id(voice_id) else None
    if voice is None or voice.member_id != member.id or voice.status == DELETING:
        raise NotFoundError(f"voice {voice_id} not found")
    return voice


def get_voice(backend: Backend, member: Member, voice_id: str) -> Voice:
    with backend.db.read() as session:
        return _own_voice(session, member, voice_id)


def list_voices(backend: Backend, member: Member) -> list[Voice]:
    with backend.db.read() as session:
        return list(session.exec(select(Voice).where(Voice.member_id == member.id, Voice.status != DELETING)
                                 .order_by(Voice.created_at)).scalars())


def request_voice_delete(backend: Backend, member: Member, voice_id: str) -> tuple[str, float, int]:
    """Step one of deleting a voice: a confirmation token, its expiry, and how many jobs go with it."""
    token = secrets.token_urlsafe(16)
    expires = now() + DELETE_CONFIRM_TTL_S
    with backend.db.write() as session:
        voice = _own_voice(session, member, voice_id)
        voice.delete_token_hash, voice.delete_token_expires = hash_token(token), expires
        session.add(voice)
        n_jobs = session.exec(select(func.count()).select_from(Job).where(Job.voice_id == voice.id)).one()[0]
    return token, expires, n_jobs


def confirm_voice_delete(backend: Backend, member: Member, voice_id: str, token: str) -> tuple[int, int]:
    """Step two: delete the voice, every job made from it and all their stored objects.

    Returns (jobs deleted, objects deleted). Running jobs lose their row; their workers notice at
    the next chunk, stop, and remove anything they wrote.
    """
    with backend.db.write() as session:
        voice = _own_voice(session, member, voice_id)
        if (voice.delete_token_hash is None or voice.delete_token_expires is None
                or voice.delete_token_expires < now()
                or not secrets.compare_digest(voice.delete_token_hash, hash_token(token))):
            raise Conflict("the confirmation token is wrong or expired; ask for a new one with DELETE "
                           f"/v1/voices/{voice_id}")
        voice.status, voice.updated_at = DELETING, now()  # hidden from now on, even if the purge stops
        session.add(voice)
    return purge_voice(backend, voice)


def purge_voice(backend: Backend, voice: Voice) -> tuple[int, int]:
    with backend.db.read() as session:
        job_rows = session.exec(select(Job.id, Job.result_key).where(Job.voice_id == voice.id)).all()
    objects = backend.storage.delete_prefix(keys.voice_prefix(voice.member_id, voice.id))
    objects += consent.purge_voice_enrollment(backend.db, backend.storage, voice)
    for row in job_rows:
        objects += backend.storage.delete_prefix(keys.job_prefix(voice.member_id, row.id))
    with backend.db.write() as session:
        ids = [row.id for row in job_rows]
        if ids:
            session.exec(delete(JobChunk).where(JobChunk.job_id.in_(ids)))
            session.exec(delete(Job).where(Job.id.in_(ids)))
        session.exec(delete(Voice).where(Voice.id == voice.id))
    backend.dispatch(voice.member_id)
    return len(job_rows), objects


# --- jobs --------------------------------------------------------------------------------------

def _request_hash(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _new_mark(session: Session) -> int:
    while True:  # a 48-bit watermark payload per job; collisions are astronomically rare but checked
        mark = secrets.randbits(48)
        if session.exec(select(Job.id).where(Job.mark == mark)).first() is None:
            return mark


def _by_idempotency_key(session: Session, member_id: str, key: str) -> Job | None:
    return session.exec(select(Job).where(Job.member_id == member_id, Job.idempotency_key == key)).scalars().first()


def create_synthesis(backend: Backend, member: Member, request: SynthesisRequest,
                     idempotency_key: str | None = None, lane: str | None = None) -> tuple[Job, bool]:
    """Queue a synthesis. Returns (job, replayed): a repeated Idempotency-Key gives the first job back.
    ``lane`` forces one (a listener waiting on a speech request is interactive whatever its length)."""
    s = backend.settings
    text = request.text.strip()
    if not text:
        raise Invalid("text is empty")
    if len(text) > s.max_text_chars:
        raise Invalid(f"text has {len(text)} characters; the limit is {s.max_text_chars}")
    if idempotency_key is not None and not (0 < len(idempotency_key) <= 200 and idempotency_key.isprintable()):
        raise Invalid("Idempotency-Key must be 1 to 200 printable characters")
    payload = request.model_dump(exclude_none=True)
    request_hash = _request_hash(payload)
    with backend.db.read() as session:
        if idempotency_key:
            earlier = _by_idempotency_key(session, member.id, idempotency_key)
            if earlier is not None:
                return _replay(earlier, request_hash)
        voice = _own_voice(session, member, request.voice_id)
        if voice.status != READY:
            state = "is still being enrolled" if voice.status == ENROLLING else f"failed enrollment: {voice.error}"
            raise Conflict(f"voice {voice.id} {state}")
        if problem := consent.refusal(session, s, voice, "synthesis"):
            raise Forbidden(problem)
        style, problem = voice_styles.resolve(session, voice, request.style)
        if problem:
            raise Invalid(problem)
        _check_quotas(backend, session, member.id, chars=len(text))
    lane = lane or (INTERACTIVE if len(text) <= s.interactive_max_chars else BACKGROUND)
    params = {name: payload[name] for name in PARAM_NAMES if name in payload}
    params["text_lang"] = request.text_lang
    if style is not None:  # resolved now: a later change of the default does not change this job
        params["style"] = style.name
    job = Job(member_id=member.id, voice_id=voice.id, kind=SYNTHESIS, lane=lane,
              priority=job_state.PRIORITY[lane], text=text, chars=len(text), params=params,
              format=request.format, idempotency_key=idempotency_key, request_hash=request_hash)
    try:
        with backend.db.write() as session:
            # Insert and choose what to dispatch in one transaction (one commit on the request's path).
            job.mark = _new_mark(session)
            session.add(job)
            session.flush()
            chosen = job_state.choose_dispatches(session, member.id, s.member_concurrency, (lane,))
    except IntegrityError:
        if not idempotency_key:
            raise
        with backend.db.read() as session:  # the same key arrived twice at once; the other won
            earlier = _by_idempotency_key(session, member.id, idempotency_key)
        if earlier is None:
            raise
        return _replay(earlier, request_hash)
    try:
        job_state.publish_all(backend.db, chosen, backend.publish)
    except Exception:
        log.warning("could not publish job %s now; the sweep will", job.id, exc_info=True)
    return job, False


def _replay(job: Job, request_hash: str) -> tuple[Job, bool]:
    if job.request_hash != request_hash:
        raise Conflict("this Idempotency-Key was already used for a different request")
    return job, True


def start_finetune(backend: Backend, member: Member, voice_id: str, request: FinetuneRequest) -> Job:
    with backend.db.read() as session:
        voice = _own_voice(session, member, voice_id)
        if voice.status != READY:
            raise Conflict(f"voice {voice.id} must be enrolled before it can be fine-tuned")
        if problem := consent.refusal(session, backend.settings, voice, "fine-tuning"):
            raise Forbidden(problem)
        ready, note = finetune_readiness(backend.settings, session.get(VoiceConsent, voice.id))
        if not ready:
            raise Conflict(f"voice {voice.id}: {note}")
        busy = session.exec(select(Job.id).where(Job.voice_id == voice.id, Job.kind == FINETUNE,
                                                 Job.status.in_(ACTIVE))).first()
        if busy is not None:
            raise Conflict(f"voice {voice.id} is already being fine-tuned (job {busy[0]})")
        _check_quotas(backend, session, member.id)
    job = Job(member_id=member.id, voice_id=voice.id, kind=FINETUNE, lane=BACKGROUND,
              priority=job_state.PRIORITY[BACKGROUND], params=request.model_dump())
    with backend.db.write() as session:
        session.add(job)
    backend.dispatch(member.id, (BACKGROUND,))
    return job


def own_job(session: Session, member: Member, job_id: str) -> Job:
    job = session.get(Job, job_id) if keys.is_id(job_id) else None
    if job is None or job.member_id != member.id:
        raise NotFoundError(f"job {job_id} not found")
    return job


def get_job(backend: Backend, member: Member, job_id: str) -> JobOut:
    with backend.db.read() as session:
        return job_view(backend, session, own_job(session, member, job_id))


def list_jobs(backend: Backend, member: Member, limit: int, offset: int, status: str | None = None,
              kind: str | None = None) -> tuple[list[JobOut], int]:
    where = [Job.member_id == member.id]
    if status:
        where.append(Job.status == status)
    if kind:
        where.append(Job.kind == kind)
    with backend.db.read() as session:
        total = session.exec(select(func.count()).select_from(Job).where(*where)).one()[0]
        rows = session.exec(select(Job).where(*where).order_by(Job.created_at.desc(), Job.id)
                            .limit(limit).offset(offset)).scalars().all()
        return [job_view(backend, session, job) for job in rows], total


def cancel_job(backend: Backend, member: Member, job_id: str) -> JobOut:
    if not keys.is_id(job_id):
        raise NotFoundError(f"job {job_id} not found")
    with backend.db.write() as session:
        outcome = job_state.request_cancel(session, job_id, member.id)
    if outcome is None:
        raise NotFoundError(f"job {job_id} not found")
    status, changed = outcome
    if not changed:
        raise Conflict(f"job {job_id} already {status}; there is nothing to cancel")
    backend.dispatch(member.id)
    return get_job(backend, member, job_id)


def retry_job(backend: Backend, member: Member, job_id: str) -> JobOut:
    """Queue a failed or cancelled job again, as a new attempt of the same job."""
    with backend.db.write() as session:
        job = own_job(session, member, job_id)
        if job.status not in (FAILED, CANCELLED):
            raise Conflict(f"job {job_id} is {job.status}; only a failed or cancelled job can be retried")
        _check_retryable(session, job)
        _check_quotas(backend, session, member.id)
        if not job_state.retry(session, job.id, member.id):
            raise Conflict(f"job {job_id} changed meanwhile; look at it again")
        if job.kind == ENROLL:
            session.exec(update(Voice).where(Voice.id == job.voice_id, Voice.status == VOICE_FAILED)
                         .values(status=ENROLLING, error=None, updated_at=now()))
    if job.kind == SYNTHESIS:  # the ended attempt's pieces and end marker are not this attempt's
        piece_channel(backend).reset(job.id)
    backend.dispatch(member.id, (job.lane,))
    return get_job(backend, member, job_id)


def _check_retryable(session: Session, job: Job) -> None:
    """What a retry needs that may be gone since the job ended: its text, its voice."""
    if job.kind == SYNTHESIS and job.text is None:
        raise Conflict(f"job {job.id} ended too long ago and its text was deleted; submit the entry again")
    voice = session.get(Voice, job.voice_id) if job.voice_id else None
    if voice is None or voice.status == DELETING:
        raise Conflict(f"the voice of job {job.id} no longer exists")
    if job.kind == ENROLL and voice.status not in (VOICE_FAILED, ENROLLING):
        raise Conflict(f"voice {voice.id} is {voice.status}; there is no enrollment to retry")
    if job.kind in (SYNTHESIS, FINETUNE) and voice.status != READY:
        raise Conflict(f"voice {voice.id} is {voice.status}, not ready")
    if job.kind == FINETUNE:
        busy = session.exec(select(Job.id).where(Job.voice_id == voice.id, Job.kind == FINETUNE,
                                                 Job.status.in_(ACTIVE))).first()
        if busy is not None:
            raise Conflict(f"voice {voice.id} is already being fine-tuned (job {busy[0]})")


def job_view(backend: Backend, session: Session, job: Job) -> JobOut:
    result = None
    if job.status == SUCCEEDED and job.result_key and job.kind == SYNTHESIS:
        t = now()
        ttl = int(min(backend.settings.presign_ttl_s, (job.expires_at or t) - t))
        if ttl > 0:
            result = Result(url=backend.storage.url(job.result_key, ttl, f"{job.id}.{job.format}"),
                            expires_at=timestamp(t + ttl), duration_s=job.duration_s, format=job.format,
                            bytes=job.result_bytes)
    return JobOut(
        job_id=job.id, kind=job.kind, status=job.status, voice_id=job.voice_id, lane=job.lane,
        progress=Progress(done=job.progress_done, total=job.progress_total, reused=job.chunks_reused),
        queue_position=job_state.queue_position(session, job), error=job.error,
        cancel_requested=job.cancel_requested, result=result,
        result_expired=job.status == SUCCEEDED and job.kind == SYNTHESIS and result is None,
        created_at=timestamp(job.created_at), started_at=timestamp(job.started_at),
        finished_at=timestamp(job.finished_at),
    )


def member_view(member: Member) -> MemberOut:
    return MemberOut(member_id=member.id, name=member.name, admin=member.is_admin,
                     created_at=timestamp(member.created_at))


def voice_view(voice: Voice, **details: object) -> VoiceOut:
    return VoiceOut(voice_id=voice.id, name=voice.name, language=voice.language, transcript=voice.transcript,
                    status=voice.status, error=voice.error, finetuned=voice.finetune_key is not None,
                    created_at=timestamp(voice.created_at), **details)


def finetune_readiness(settings: Settings, record: VoiceConsent | None) -> tuple[bool, str | None]:
    """(may it be fine-tuned, what it needs). A one-clip voice (no dataset) trains on its reference."""
    if record is None or record.dataset_key is None:
        return True, None
    need, have = settings.finetune_min_minutes, record.clean_seconds / 60
    if have >= need:
        return True, f"fine-tuning needs at least {need:g} minutes of clean speech; you have {have:.2f}"
    return False, (f"fine-tuning needs at least {need:g} minutes of clean speech; you have {have:.2f}. Add takes "
                   f"to this voice (POST /v1/enrollments with voice_id, or `echodiary enroll start --voice "
                   f"{record.voice_id}`)")


def voice_details(backend: Backend, member: Member, voice_id: str) -> VoiceOut:
    """One voice with its styles, the clean speech collected and what fine-tuning needs."""
    with backend.db.read() as session:
        voice = _own_voice(session, member, voice_id)
        styles = voice_styles.ready_styles(session, voice.id)
        record = session.get(VoiceConsent, voice.id)
    default = voice_styles.default_style(styles)
    details: dict[str, object] = {"styles": [voice_styles.ENROLLMENT_STYLE, *(style.name for style in styles)],
                                  "default_style": default.name if default else voice_styles.ENROLLMENT_STYLE}
    if record is not None and record.dataset_key is not None:
        ready, note = finetune_readiness(backend.settings, record)
        details.update(clean_speech_minutes=round(record.clean_seconds / 60, 3), dataset_clips=record.dataset_clips,
                       finetune_min_minutes=backend.settings.finetune_min_minutes, finetune_ready=ready,
                       finetune_note=note)
    return voice_view(voice, **details)


def find_job_by_mark(backend: Backend, member: Member, mark: int) -> Job | None:
    """The member's own job that carries this watermark payload (None for anyone else's)."""
    with backend.db.read() as session:
        job = session.exec(select(Job).where(Job.mark == mark)).scalars().first()
    return job if job is not None and job.member_id == member.id else None


# --- housekeeping ------------------------------------------------------------------------------

def cleanup_expired(backend: Backend) -> int:
    """Delete results past their TTL (the job stays, without audio or text), forget the text of jobs
    that failed or were cancelled as long ago, and purge half-deleted voices."""
    t = now()
    with backend.db.read() as session:
        expired = session.exec(select(Job.id, Job.result_key).where(
            Job.status == SUCCEEDED, Job.result_key.is_not(None), Job.expires_at < t)).all()
        deleting = session.exec(select(Voice).where(Voice.status == DELETING)).scalars().all()
    for row in expired:
        backend.storage.delete(row.result_key)
        with backend.db.write() as session:
            session.exec(update(Job).where(Job.id == row.id)
                         .values(result_key=None, result_bytes=0, text=None))
    with backend.db.write() as session:  # diary text of jobs that ended without a result goes too
        session.exec(update(Job).where(Job.status.in_((FAILED, CANCELLED)), Job.text.is_not(None),
                                       Job.finished_at < t - backend.settings.result_ttl_s).values(text=None))
    consent.expire_sessions(backend.db, backend.storage)
    for voice in deleting:
        if voice.updated_at < t - 60:  # not one a request is deleting right now
            purge_voice(backend, voice)
    return len(expired)


def clear_ended_chunks(backend: Backend, limit: int = 50) -> int:
    """Delete the chunk objects of jobs that failed or were cancelled: they will not resume.

    A job's chunk rows mark that it may have chunk objects; they go once the objects are gone, so a
    storage outage only postpones the deletion to a later sweep. Returns how many jobs were cleared.
    """
    with backend.db.read() as session:
        rows = session.exec(select(Job.id, Job.member_id).where(
            Job.status.in_((FAILED, CANCELLED)), select(JobChunk.job_id).where(JobChunk.job_id == Job.id).exists())
            .limit(limit)).all()
    for row in rows:
        backend.storage.delete_prefix(keys.chunks_prefix(row.member_id, row.id))
        with backend.db.write() as session:  # unless a retry queued the job again meanwhile
            session.exec(delete(JobChunk).where(JobChunk.job_id == row.id, select(Job.id).where(
                Job.id == row.id, Job.status.in_((FAILED, CANCELLED))).exists()))
    return len(rows)


def voice_failed(session: Session, voice_id: str, error: str) -> None:
    session.exec(update(Voice).where(Voice.id == voice_id, Voice.status == ENROLLING)
                 .values(status=VOICE_FAILED, error=error[:2000], updated_at=now()))


def voice_ready(session: Session, voice_id: str, profile_key: str, profile_bytes: int) -> bool:
    return session.exec(update(Voice).where(Voice.id == voice_id, Voice.status.in_((ENROLLING, READY)))
                        .values(status=READY, error=None, profile_key=profile_key,
                                profile_bytes=profile_bytes, updated_at=now())).rowcount == 1

