"""Styles (personas) of a voice, as service functions: add (a job checks and enrolls it), list, delete,
choose the default.

GPT-SoVITS has no emotion control: the documented way to speak calmly or warmly is a reference
recorded that way. A style is such a reference (3-10 s, the take gates of guided enrollment), read by
the voice's verified speaker: its job compares it with the voice's enrollment (reference and consent
recording) and refuses another speaker. Adding waits for that job a little (it is short), in
embedded and server mode alike; a style still pending after the wait is listed as pending.
"""

from __future__ import annotations

import re
import time

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from contracts import ENROLLMENT_STYLE, STYLE_NAME_PATTERN
from shared import job_state, keys, voice_styles
from shared.consent import consent_state
from shared.service import (
    TRANSCRIPT_MAX_CHARS,
    Backend,
    Conflict,
    Forbidden,
    Invalid,
    NotFoundError,
    ServiceError,
    _check_quotas,
    _own_voice,
    inspect_reference,
)
from shared.tables import ENROLL, FAILED, INTERACTIVE, READY, STYLE_READY, Job, Member, Voice, VoiceStyle

STYLE_WAIT_S = 60.0  # how long adding a style waits for its job (gates, speaker check, profile)


class StyleRefused(Invalid):
    """The style's recording failed a gate or the speaker check; nothing of it was kept."""


def reference_key(member_id: str, voice_id: str, style_id: str) -> str:
    return keys.style_prefix(member_id, voice_id, style_id) + "reference.audio"


def profile_key(member_id: str, voice_id: str, style_id: str) -> str:
    return keys.style_prefix(member_id, voice_id, style_id) + "profile.safetensors"


def _checked_name(name: str) -> str:
    name = name.strip()
    if not re.match(STYLE_NAME_PATTERN, name):
        raise Invalid(f"style name {name!r} must be 1 to 32 characters, without / : ? # % \\ or control characters")
    if name == ENROLLMENT_STYLE:
        raise Conflict(f"{ENROLLMENT_STYLE!r} is the voice's own enrollment reference; choose another name")
    return name


def _styled_voice(session: Session, backend: Backend, member: Member, voice_id: str) -> Voice:
    """A ready voice with a verified consent: the enrollment a style's speaker is compared with."""
    voice = _own_voice(session, member, voice_id)
    if voice.status != READY:
        raise Conflict(f"voice {voice.id} is {voice.status}; styles need a ready voice")
    if consent_state(session, backend.settings, voice)[0] != "verified":
        raise Forbidden(f"voice {voice.id} has no verified consent recording to check a style's speaker "
                        "against: enroll it with `echodiary enroll` first")
    return voice


def add_style(backend: Backend, member: Member, voice_id: str, name: str, audio: bytes,
              transcript: str) -> VoiceStyle:
    """Store the recording and queue the job that checks and enrolls it; waits up to STYLE_WAIT_S.

    Raises :class:`StyleRefused` with the gate's or the speaker check's message when it is refused.
    """
    name, transcript = _checked_name(name), transcript.strip()
    if not transcript or len(transcript) > TRANSCRIPT_MAX_CHARS:
        raise Invalid(f"transcript must be 1 to {TRANSCRIPT_MAX_CHARS} characters: type what the recording says")
    inspect_reference(audio, backend.settings.max_upload_bytes)
    with backend.db.read() as session:
        voice = _styled_voice(session, backend, member, voice_id)
        if voice_styles.by_name(session, voice.id, name) is not None:
            raise Conflict(f"voice {voice.id} already has a style {name!r}; delete it first to record it again")
        _check_quotas(backend, session, member.id, new_bytes=len(audio))
    style = VoiceStyle(voice_id=voice.id, member_id=member.id, name=name, transcript=transcript,
                       reference_key="", reference_bytes=len(audio))
    style.reference_key = reference_key(member.id, voice.id, style.id)
    job = Job(member_id=member.id, voice_id=voice.id, kind=ENROLL, lane=INTERACTIVE,
              priority=job_state.PRIORITY[INTERACTIVE], params={"style_id": style.id})
    style.job_id = job.id
    backend.storage.put(style.reference_key, audio)
    try:
        with backend.db.write() as session:
            session.add(style)
            session.add(job)
    except IntegrityError as exc:  # the same name, added twice at once
        backend.storage.delete(style.reference_key)
        raise Conflict(f"voice {voice.id} already has a style {name!r}") from exc
    backend.dispatch(member.id, (INTERACTIVE,))
    return _wait_for_style(backend, style.id, job.id)


def _wait_for_style(backend: Backend, style_id: str, job_id: str) -> VoiceStyle:
    deadline = time.monotonic() + STYLE_WAIT_S
    while True:
        with backend.db.read() as session:
            style = session.get(VoiceStyle, style_id)
            failed = session.exec(select(Job.error).where(Job.id == job_id, Job.status == FAILED)).first()
        if failed is not None:
            raise StyleRefused(failed[0] or "the style was refused")
        if style is None:  # refused: the job deletes the row, then records why
            if time.monotonic() > deadline:
                raise ServiceError(f"the style was withdrawn; see job {job_id}")
        elif style.status == STYLE_READY or time.monotonic() > deadline:
            return style
        time.sleep(0.1)


def list_styles(backend: Backend, member: Member, voice_id: str) -> tuple[Voice, list[VoiceStyle]]:
    with backend.db.read() as session:
        voice = _own_voice(session, member, voice_id)
        rows = session.exec(select(VoiceStyle).where(VoiceStyle.voice_id == voice.id)
                            .order_by(VoiceStyle.created_at)).scalars().all()
    return voice, list(rows)


def delete_style(backend: Backend, member: Member, voice_id: str, name: str) -> int:
    """Delete one style with its objects; returns how many objects went. Its default goes back to
    the enrollment reference."""
    with backend.db.write() as session:
        voice = _own_voice(session, member, voice_id)
        style = voice_styles.by_name(session, voice.id, name)
        if style is None:
            raise NotFoundError(f"voice {voice.id} has no style {name!r}")
        session.exec(delete(VoiceStyle).where(VoiceStyle.id == style.id))
    return backend.storage.delete_prefix(keys.style_prefix(member.id, voice.id, style.id))


def set_default_style(backend: Backend, member: Member, voice_id: str, name: str) -> None:
    """Syntheses that name no style read in ``name`` from now on (``enrollment``: the reference)."""
    with backend.db.write() as session:
        voice = _own_voice(session, member, voice_id)
        chosen = None
        if name != ENROLLMENT_STYLE:
            chosen = voice_styles.by_name(session, voice.id, name)
            if chosen is None or chosen.status != STYLE_READY:
                ready = voice_styles.ready_styles(session, voice.id)
                raise NotFoundError(f"voice {voice.id} has no ready style {name!r}; its styles: "
                                    f"{voice_styles.style_names(ready)}")
        session.exec(update(VoiceStyle).where(VoiceStyle.voice_id == voice.id).values(is_default=False))
        if chosen is not None:
            session.exec(update(VoiceStyle).where(VoiceStyle.id == chosen.id).values(is_default=True))
