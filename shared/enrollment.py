"""Guided enrollment sessions (issue #13), as service functions over the database and storage.

A session holds one member's takes of a reading script and their consent recording until it is
finished into a voice. Nothing here touches the engine: the caller hands in the script's facts and
a take assessor (``worker.enrollment`` supplies both). In embedded mode the assessor runs in this
process; in server mode a take is analysed by a job on the cpu queue that :func:`add_take` waits
on for a few seconds (analysis takes well under a second, and keeping VAD and models out of the API
process keeps it light; a take still pending after the wait is reported as pending and the client
reads the session again).

Consent: a voice is usable only with a passed :class:`VoiceConsent` (see :mod:`shared.consent`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, update
from sqlmodel import Session

from shared import job_state, keys
from shared.audio_limits import AudioLimits, AudioRefused, check_upload
from shared.consent import consent_state, session_prefix
from shared.schemas import VOICE_LANGS
from shared.service import (
    Backend,
    Conflict,
    Forbidden,
    Invalid,
    NotFoundError,
    ServiceError,
    TooLarge,
    UnsupportedMedia,
    _check_quotas,
    _new_mark,
    _own_voice,
)
from shared.settings import Settings
from shared.tables import (
    CONSENT_TAKE,
    ENROLL,
    ENROLLING,
    INTERACTIVE,
    READY,
    SESSION_DONE,
    SESSION_EXPIRED,
    SESSION_FINISHING,
    SESSION_OPEN,
    TAKE_ACCEPTED,
    TAKE_PENDING,
    TAKE_REFUSED,
    WHOLE_SCRIPT,
    EnrollmentSession,
    EnrollmentTake,
    Job,
    Member,
    Voice,
    VoiceConsent,
    now,
)

SESSION_TTL_S = 7 * 24 * 3600  # an open session untouched this long is deleted with its audio
TAKE_WAIT_S = 20.0  # server mode: how long an upload waits for its analysis job
MIN_CLIPS = 3  # the reference, the A/B hold-out and at least one clip to fine-tune on
MAX_SECONDS = {"sentence": 30.0, "whole_script": 240.0, "consent": 60.0}

NOTICES = {
    "en": ("Only your own voice may be enrolled: do not record anyone else, and do not imitate another "
           "person. You will read a consent statement, and the voice is usable only if a speaker check "
           "finds that statement and your recordings are the same speaker. Every recording EchoDiary "
           "makes with this voice carries an inaudible watermark and is labelled as AI-generated."),
    "zh": ("只能录入你本人的声音：不要录制他人，也不要模仿他人。你需要朗读一段同意声明，只有说话人验证确认"
           "声明与录音出自同一人时，这个声音才能使用。EchoDiary 用这个声音生成的每一段音频都带有听不见的水印，"
           "并标注为人工智能生成。"),
}


@dataclass(frozen=True)
class ScriptFacts:
    """What the service needs of a reading script (``worker.enrollment.script_facts`` makes it)."""

    script_id: str
    language: str  # phonemizer language: "zh" or "en"
    message_language: str  # "zh" or "en"
    sentences: tuple[str, ...]


@dataclass
class TakeAssessment:
    """A take's analysis: JSON-ready report, and its clips when accepted."""

    accepted: bool
    messages: list[str]
    report: dict[str, Any] | None
    seconds: float = 0.0
    clips: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)


# (audio, script id, sentence (0-based, WHOLE_SCRIPT or CONSENT_TAKE), statement) -> assessment
Assess = Callable[[bytes, str, int, str], TakeAssessment]


class TakeRefused(Invalid):
    """A take failed a quality gate; it was not kept."""

    def __init__(self, assessment: TakeAssessment) -> None:
        super().__init__(" ".join(assessment.messages) or "the take was refused")
        self.assessment = assessment


# --- storage keys --------------------------------------------------------------------------------

def take_key(member_id: str, session_id: str, take_id: str) -> str:
    return session_prefix(member_id, session_id) + f"takes/{keys._checked(take_id, 'take id')}.audio"


def consent_key(member_id: str, voice_id: str) -> str:
    return keys.voice_prefix(member_id, voice_id) + "consent.audio"


def dataset_prefix(member_id: str, voice_id: str) -> str:
    return keys.voice_prefix(member_id, voice_id) + "dataset/"


def holdout_key(member_id: str, voice_id: str) -> str:
    """The member's own recording of the held-out sentence (the A of the A/B pair)."""
    return keys.voice_prefix(member_id, voice_id) + "ab/recording.flac"


def ab_synthesis_key(member_id: str, voice_id: str) -> str:
    """The held-out sentence rendered in the new voice (the B)."""
    return keys.voice_prefix(member_id, voice_id) + "ab/synthesis.flac"


# --- sessions ------------------------------------------------------------------------------------

def take_kind(sentence: int) -> str:
    return {WHOLE_SCRIPT: "whole_script", CONSENT_TAKE: "consent"}.get(sentence, "sentence")


def start_session(backend: Backend, member: Member, script: ScriptFacts, voice_name: str, accept_notice: bool,
                  statement: str, language: str | None = None, voice_id: str | None = None) -> EnrollmentSession:
    """A new session; refused unless the member accepted the notice (which is stored with it).

    With ``voice_id`` the session adds samples to that ready, consented voice instead of making one.
    """
    language = language or script.message_language
    if language not in NOTICES:
        raise Invalid(f"language {language!r} is not one of {', '.join(NOTICES)}")
    if not accept_notice:
        raise Forbidden("enrollment needs your acceptance of the notice: " + NOTICES[language]
                        + " Send accept_notice=true once you agree.")
    voice_name = voice_name.strip()
    if not voice_name or len(voice_name) > 100:
        raise Invalid("voice_name must be 1 to 100 characters")
    voice_language = script.language if script.language in VOICE_LANGS else "zh"
    extended = _extendable_voice(backend, member, voice_id) if voice_id else None
    if extended is not None:
        voice_name, voice_language = extended.name, extended.language
    t = now()
    row = EnrollmentSession(member_id=member.id, script_id=script.script_id, language=language,
                            voice_language=voice_language, sentences=len(script.sentences),
                            voice_name=voice_name, statement=statement, notice=NOTICES[language],
                            notice_accepted_at=t, expires_at=t + SESSION_TTL_S,
                            voice_id=extended.id if extended else None, extends_voice=extended is not None)
    with backend.db.write() as session:
        session.add(row)
    return row


def _extendable_voice(backend: Backend, member: Member, voice_id: str) -> Voice:
    """A voice that may take more samples: ready, with a verified consent to check their speaker against."""
    with backend.db.read() as session:
        voice = _own_voice(session, member, voice_id)
        if voice.status != READY:
            raise Conflict(f"voice {voice.id} is {voice.status}; only a ready voice takes more samples")
        if consent_state(session, backend.settings, voice)[0] != "verified":
            raise Forbidden(f"voice {voice.id} has no verified consent recording to check new samples against: "
                            "enroll your voice with `echodiary enroll` instead")
    return voice


def _own_session(session: Session, member: Member, session_id: str) -> EnrollmentSession:
    row = session.get(EnrollmentSession, session_id) if keys.is_id(session_id) else None
    if row is None or row.member_id != member.id:
        raise NotFoundError(f"enrollment {session_id} not found")
    return row


def _open(row: EnrollmentSession) -> None:
    if row.status == SESSION_EXPIRED:
        raise Conflict(f"enrollment {row.id} expired and its recordings were deleted; start a new one")
    if row.status != SESSION_OPEN:
        raise Conflict(f"enrollment {row.id} is {row.status}; it takes no more recordings")


def _reopen_if_finish_ended(backend: Backend, row: EnrollmentSession) -> None:
    """A finish job that failed or was cancelled without reopening the session (a crash, a cancel)
    hands the session back to the member, with the job's error."""
    if row.status != SESSION_FINISHING or not row.job_id:
        return
    with backend.db.read() as session:
        ended = session.exec(select(Job.status, Job.error).where(
            Job.id == row.job_id, Job.status.in_(("failed", "cancelled")))).first()
    if ended is not None:
        finish_refused(backend, row.id, ended.error or "the finish was cancelled; finish again when ready")


def get_session(backend: Backend, member: Member, session_id: str) -> tuple[EnrollmentSession, list[EnrollmentTake]]:
    """The session and its current takes (the latest per sentence; pending and refused ones after)."""
    with backend.db.read() as session:
        _reopen_if_finish_ended(backend, _own_session(session, member, session_id))
    with backend.db.read() as session:
        row = _own_session(session, member, session_id)
        takes = session.exec(select(EnrollmentTake).where(EnrollmentTake.session_id == row.id)
                             .order_by(EnrollmentTake.created_at)).scalars().all()
    return row, current_takes(list(takes))


def current_takes(takes: list[EnrollmentTake]) -> list[EnrollmentTake]:
    """Accepted takes (one per sentence), and uploads not yet superseded by a later accepted one."""
    latest: dict[int, EnrollmentTake] = {}
    for take in takes:
        if take.status == TAKE_ACCEPTED:
            latest[take.sentence] = take
    extra = [t for t in takes if t.status != TAKE_ACCEPTED
             and (t.sentence not in latest or t.created_at > latest[t.sentence].created_at)]
    return sorted([*latest.values(), *extra], key=lambda t: (t.sentence < 0, t.sentence, t.created_at))


def missing_sentences(row: EnrollmentSession, takes: list[EnrollmentTake]) -> list[int]:
    """0-based sentences that no accepted take has a clip of."""
    covered = {clip["sentence_index"] for t in takes if t.status == TAKE_ACCEPTED for clip in t.clips}
    return [i for i in range(row.sentences) if i not in covered]


def finish_problems(row: EnrollmentSession, takes: list[EnrollmentTake]) -> list[str]:
    """Why the session cannot be finished yet (empty: it can)."""
    problems = []
    if any(t.status == TAKE_PENDING for t in takes):
        problems.append("a take is still being analysed; wait a moment")
    clips = {c["sentence_index"] for t in takes if t.status == TAKE_ACCEPTED and t.sentence != CONSENT_TAKE
             for c in t.clips}
    if row.extends_voice:  # the voice has its consent and reference already: any new clip helps
        return problems if clips else [*problems, "record at least one sentence to add"]
    if len(clips) < MIN_CLIPS:
        problems.append(f"record at least {MIN_CLIPS} sentences (or the whole script): {len(clips)} usable so far")
    if not any(t.sentence == CONSENT_TAKE and t.status == TAKE_ACCEPTED for t in takes):
        problems.append("record the consent statement (PUT /v1/enrollments/{id}/consent)")
    return problems


# --- takes ---------------------------------------------------------------------------------------

def _bounded(settings: Settings, data: bytes, kind: str) -> None:
    """Size and header bounds before anything decodes the upload (quality gates come after)."""
    try:
        check_upload(data, AudioLimits(settings.max_upload_bytes, 0.0, MAX_SECONDS[kind]))
    except AudioRefused as exc:
        error = {"size": TooLarge, "format": UnsupportedMedia}.get(exc.reason, Invalid)
        raise error(str(exc).replace("a reference must be", "this take must be")) from exc


def add_take(backend: Backend, member: Member, session_id: str, sentence: int, data: bytes,
             assess: Assess | None) -> EnrollmentTake:
    """Analyse and keep one take; raises :class:`TakeRefused` (nothing kept) when a gate fails.

    ``sentence`` is 0-based, or WHOLE_SCRIPT / CONSENT_TAKE. With ``assess`` the analysis runs
    here; without it a cpu-queue job runs it and this waits up to TAKE_WAIT_S for the outcome.
    """
    row, _ = get_session(backend, member, session_id)
    _open(row)
    with backend.db.read() as session:
        if not (0 <= sentence < row.sentences or sentence in (WHOLE_SCRIPT, CONSENT_TAKE)):
            raise Invalid(f"sentence must be 1 to {row.sentences}, or 'all' for the whole script")
        _check_quotas(backend, session, member.id, new_bytes=len(data))
    _bounded(backend.settings, data, take_kind(sentence))
    take = EnrollmentTake(session_id=row.id, sentence=sentence, audio_bytes=len(data))
    take.audio_key = take_key(member.id, row.id, take.id)
    if assess is not None:
        assessment = assess(data, row.script_id, sentence, row.statement)
        if not assessment.accepted:
            raise TakeRefused(assessment)
        backend.storage.put(take.audio_key, data)
        with backend.db.write() as session:
            session.add(take)
        return record_assessment(backend, take.id, assessment)
    return _take_by_job(backend, member, row, take, data)


def _take_by_job(backend: Backend, member: Member, row: EnrollmentSession, take: EnrollmentTake,
                 data: bytes) -> EnrollmentTake:
    job = Job(member_id=member.id, kind=ENROLL, lane=INTERACTIVE, queue="cpu",
              priority=job_state.PRIORITY[INTERACTIVE], params={"enrollment_id": row.id, "take_id": take.id})
    take.job_id = job.id
    backend.storage.put(take.audio_key, data)
    with backend.db.write() as session:
        session.add(take)
        session.add(job)
    backend.dispatch(member.id, (INTERACTIVE,))
    deadline = time.monotonic() + TAKE_WAIT_S
    while True:
        with backend.db.read() as session:
            current = session.get(EnrollmentTake, take.id)
            failed = session.exec(select(Job.error).where(Job.id == job.id, Job.status == "failed")).first()
        if current is None:
            raise NotFoundError(f"enrollment {row.id} not found")
        if current.status == TAKE_REFUSED:
            raise TakeRefused(assessment_of(current))
        if current.status == TAKE_ACCEPTED or time.monotonic() > deadline:
            return current
        if failed is not None:
            raise ServiceError(f"the analysis of this take failed: {failed[0]}")
        time.sleep(0.1)


def assessment_of(take: EnrollmentTake) -> TakeAssessment:
    report = take.report or {}
    return TakeAssessment(take.status == TAKE_ACCEPTED, list(report.get("messages") or []), take.report,
                          take.seconds, list(take.clips), list(take.rejected))


def record_assessment(backend: Backend, take_id: str, assessment: TakeAssessment) -> EnrollmentTake:
    """Store a take's outcome. Accepted: older takes of that sentence go; refused: its audio goes."""
    with backend.db.write() as session:
        take = session.get(EnrollmentTake, take_id)
        if take is None:
            raise NotFoundError(f"take {take_id} not found")
        take.status = TAKE_ACCEPTED if assessment.accepted else TAKE_REFUSED
        take.report, take.seconds = assessment.report, assessment.seconds
        take.clips, take.rejected = assessment.clips, assessment.rejected
        dropped = [take.audio_key] if not assessment.accepted else []
        if assessment.accepted:
            older = session.exec(select(EnrollmentTake).where(
                EnrollmentTake.session_id == take.session_id, EnrollmentTake.sentence == take.sentence,
                EnrollmentTake.id != take.id)).scalars().all()
            dropped += [t.audio_key for t in older]
            session.exec(delete(EnrollmentTake).where(EnrollmentTake.id.in_([t.id for t in older])))
        else:
            take.audio_key = None
        session.add(take)
        touch = update(EnrollmentSession).where(EnrollmentSession.id == take.session_id)
        session.exec(touch.values(updated_at=now(), expires_at=now() + SESSION_TTL_S))
    for key in dropped:
        if key:
            backend.storage.delete(key)
    return take


# --- finishing -----------------------------------------------------------------------------------

def finish_session(backend: Backend, member: Member, session_id: str) -> tuple[EnrollmentSession, Job]:
    """Queue the job that turns the takes into a voice (speaker checks, reference, dataset)."""
    row, takes = get_session(backend, member, session_id)
    _open(row)
    problems = finish_problems(row, takes)
    if problems:
        raise Conflict("cannot finish yet: " + "; ".join(problems))
    with backend.db.read() as session:
        _check_quotas(backend, session, member.id)
    if row.extends_voice:
        return _finish_extension(backend, member, session_id)
    with backend.db.write() as session:
        row = _own_session(session, member, session_id)
        _open(row)
        voice = session.get(Voice, row.voice_id) if row.voice_id else None
        if voice is None:  # a failed earlier finish keeps its voice row for the next attempt
            voice = Voice(member_id=member.id, name=row.voice_name, language=row.voice_language, transcript="")
        voice.status, voice.error, voice.updated_at = ENROLLING, None, now()
        session.add(voice)
        job = Job(member_id=member.id, voice_id=voice.id, kind=ENROLL, lane=INTERACTIVE,
                  priority=job_state.PRIORITY[INTERACTIVE], params={"enrollment_id": row.id})
        job.mark = _new_mark(session)  # the A/B synthesis is watermarked with it, like every output
        session.add(job)
        row.status, row.voice_id, row.job_id, row.error, row.updated_at = (
            SESSION_FINISHING, voice.id, job.id, None, now())
        session.add(row)
    backend.dispatch(member.id, (INTERACTIVE,))
    return row, job


def _finish_extension(backend: Backend, member: Member, session_id: str) -> tuple[EnrollmentSession, Job]:
    """Queue the job that checks the new takes against the voice and adds their clips to its dataset;
    the voice stays ready (and usable) meanwhile."""
    with backend.db.write() as session:
        row = _own_session(session, member, session_id)
        _open(row)
        voice = session.get(Voice, row.voice_id) if row.voice_id else None
        if voice is None or voice.status != READY:
            raise Conflict(f"voice {row.voice_id} is no longer ready; these takes cannot join it")
        job = Job(member_id=member.id, voice_id=voice.id, kind=ENROLL, lane=INTERACTIVE,
                  priority=job_state.PRIORITY[INTERACTIVE], params={"enrollment_id": row.id})
        session.add(job)
        row.status, row.job_id, row.error, row.updated_at = SESSION_FINISHING, job.id, None, now()
        session.add(row)
    backend.dispatch(member.id, (INTERACTIVE,))
    return row, job


def extension_succeeded(session: Session, row: EnrollmentSession, seconds: float, clips: int) -> None:
    """In the job's finishing transaction: the voice's dataset grew; the session is done."""
    session.exec(update(VoiceConsent).where(VoiceConsent.voice_id == row.voice_id).values(
        clean_seconds=VoiceConsent.clean_seconds + seconds, dataset_clips=VoiceConsent.dataset_clips + clips))
    session.exec(update(EnrollmentSession).where(EnrollmentSession.id == row.id)
                 .values(status=SESSION_DONE, error=None, updated_at=now()))
    session.exec(update(EnrollmentTake).where(EnrollmentTake.session_id == row.id).values(audio_key=None))


def finish_refused(backend: Backend, session_id: str, message: str) -> None:
    """The finish job found a problem the member can fix: the session takes recordings again."""
    with backend.db.write() as session:
        session.exec(update(EnrollmentSession).where(EnrollmentSession.id == session_id,
                                                     EnrollmentSession.status == SESSION_FINISHING)
                     .values(status=SESSION_OPEN, error=message[:2000], updated_at=now(),
                             expires_at=now() + SESSION_TTL_S))


@dataclass
class FinishedVoice:
    """What the finish job stored for a voice, recorded in one transaction by :func:`finish_succeeded`."""

    transcript: str
    reference_key: str
    reference_bytes: int
    profile_key: str
    profile_bytes: int
    consent: VoiceConsent


def finish_succeeded(session: Session, row: EnrollmentSession, done: FinishedVoice) -> bool:
    """In the job's finishing transaction: the voice is ready, with its consent; the session is done."""
    changed = session.exec(update(Voice).where(Voice.id == row.voice_id, Voice.status == ENROLLING).values(
        status=READY, error=None, transcript=done.transcript, reference_key=done.reference_key,
        reference_bytes=done.reference_bytes, profile_key=done.profile_key, profile_bytes=done.profile_bytes,
        updated_at=now())).rowcount
    if not changed:
        return False
    session.exec(delete(VoiceConsent).where(VoiceConsent.voice_id == row.voice_id))
    session.add(done.consent)
    session.exec(update(EnrollmentSession).where(EnrollmentSession.id == row.id)
                 .values(status=SESSION_DONE, error=None, updated_at=now()))
    session.exec(update(EnrollmentTake).where(EnrollmentTake.session_id == row.id).values(audio_key=None))
    return True


def get_consent(backend: Backend, member: Member, voice_id: str) -> tuple[Voice, str, VoiceConsent | None]:
    """A voice's consent state ("verified" | "legacy" | "missing") and its consent record."""
    with backend.db.read() as session:
        voice = _own_voice(session, member, voice_id)
        state, consent = consent_state(session, backend.settings, voice)
    return voice, state, consent
