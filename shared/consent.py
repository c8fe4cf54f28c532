"""Consent gating and enrollment housekeeping that the service layer itself needs (a leaf module:
:mod:`shared.service` imports it, and it imports nothing of the service).

A voice is usable (synthesis, fine-tuning) only with a passed :class:`VoiceConsent`. A voice with no
consent row at all is a one-clip "legacy" upload, usable only where ``allow_legacy_voices`` is set.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlmodel import Session

from shared import keys
from shared.db import Database
from shared.settings import Settings
from shared.storage import Storage
from shared.tables import (
    SESSION_EXPIRED,
    SESSION_OPEN,
    EnrollmentSession,
    EnrollmentTake,
    Voice,
    VoiceConsent,
    VoiceStyle,
    now,
)


def session_prefix(member_id: str, session_id: str) -> str:
    """Where an enrollment session's takes live until the session is finished into a voice."""
    return keys.member_prefix(member_id) + f"enrollments/{keys._checked(session_id, 'enrollment id')}/"


def consent_state(session: Session, settings: Settings, voice: Voice) -> tuple[str, VoiceConsent | None]:
    """("verified" | "legacy" | "missing", the consent row)."""
    consent = session.get(VoiceConsent, voice.id)
    if consent is not None and consent.passed:
        return "verified", consent
    if consent is None and settings.allow_legacy_voices:
        return "legacy", None
    return "missing", consent


def refusal(session: Session, settings: Settings, voice: Voice, action: str) -> str | None:
    """Why ``action`` (synthesis, fine-tuning) is refused on this voice; None when it is allowed."""
    if consent_state(session, settings, voice)[0] != "missing":
        return None
    return (f"voice {voice.id} has no verified consent, so it cannot be used for {action}: "
            "enroll it with a consent recording (POST /v1/enrollments, or `echodiary enroll`)")


def purge_voice_enrollment(db: Database, storage: Storage, voice: Voice) -> int:
    """Deleting a voice: its consent row and styles, its sessions (the first enrollment and any that added
    takes) with their takes and audio. Objects deleted (the styles' objects lie under the voice's prefix)."""
    with db.read() as session:
        ids = session.exec(select(EnrollmentSession.id).where(EnrollmentSession.voice_id == voice.id)).scalars().all()
    objects = sum(storage.delete_prefix(session_prefix(voice.member_id, sid)) for sid in ids)
    with db.write() as session:
        session.exec(delete(VoiceConsent).where(VoiceConsent.voice_id == voice.id))
        session.exec(delete(VoiceStyle).where(VoiceStyle.voice_id == voice.id))
        if ids:
            session.exec(delete(EnrollmentTake).where(EnrollmentTake.session_id.in_(ids)))
            session.exec(delete(EnrollmentSession).where(EnrollmentSession.id.in_(ids)))
    return objects


def expire_sessions(db: Database, storage: Storage) -> int:
    """Open sessions past their expiry lose their takes and audio; returns how many expired."""
    t = now()
    with db.read() as session:
        stale = session.exec(select(EnrollmentSession.id, EnrollmentSession.member_id).where(
            EnrollmentSession.status == SESSION_OPEN, EnrollmentSession.expires_at < t)).all()
    for sid, member_id in stale:
        with db.write() as session:
            if not session.exec(update(EnrollmentSession).where(
                    EnrollmentSession.id == sid, EnrollmentSession.status == SESSION_OPEN,
                    EnrollmentSession.expires_at < t).values(status=SESSION_EXPIRED, updated_at=t)).rowcount:
                continue  # touched or finished meanwhile
            session.exec(delete(EnrollmentTake).where(EnrollmentTake.session_id == sid))
        storage.delete_prefix(session_prefix(member_id, sid))
    return len(stale)
