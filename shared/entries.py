"""Diary entries: a member's own texts, kept by day. Another member's entry is "not found"."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlmodel import Session, select

from shared import keys
from shared.entry_schemas import EntryCreate, EntryOut, EntryPage, EntryPatch
from shared.schemas import timestamp
from shared.service import Backend, Invalid, NotFoundError
from shared.tables import DiaryEntry, Job, Member, Voice, now


def entry_view(entry: DiaryEntry) -> EntryOut:
    return EntryOut(id=entry.id, title=entry.title, text=entry.text, language=entry.language,
                    voice_id=entry.voice_id, entry_date=date.fromisoformat(entry.entry_date),
                    last_job_id=entry.last_job_id, created_at=timestamp(entry.created_at),
                    updated_at=timestamp(entry.updated_at))


def _check_text(backend: Backend, text: str) -> None:
    limit = backend.settings.max_text_chars
    if len(text) > limit:
        raise Invalid(f"text has {len(text)} characters; the limit is {limit}")


def _check_owned(session: Session, member: Member, model: Any, thing_id: str | None, what: str) -> None:
    """A voice or job an entry points at must be the member's own (else "not found", like a missing one)."""
    if thing_id is None:
        return
    row = session.get(model, thing_id) if keys.is_id(thing_id) else None
    if row is None or row.member_id != member.id:
        raise NotFoundError(f"{what} {thing_id} not found")


def _own_entry(session: Session, member: Member, entry_id: str) -> DiaryEntry:
    entry = session.get(DiaryEntry, entry_id) if keys.is_id(entry_id) else None
    if entry is None or entry.member_id != member.id:
        raise NotFoundError(f"entry {entry_id} not found")
    return entry


def create_entry(backend: Backend, member: Member, body: EntryCreate) -> EntryOut:
    _check_text(backend, body.text)
    with backend.db.write() as session:
        _check_owned(session, member, Voice, body.voice_id, "voice")
        entry = DiaryEntry(member_id=member.id, title=body.title, text=body.text, language=body.language,
                           voice_id=body.voice_id, entry_date=body.entry_date.isoformat())
        session.add(entry)
        session.flush()
        return entry_view(entry)


def get_entry(backend: Backend, member: Member, entry_id: str) -> EntryOut:
    with backend.db.read() as session:
        return entry_view(_own_entry(session, member, entry_id))


def list_entries(backend: Backend, member: Member, since: date | None, until: date | None,
                 limit: int, offset: int) -> EntryPage:
    """Newest day first (then newest written first), ``since``/``until`` inclusive."""
    if since and until and since > until:
        raise Invalid(f"since ({since}) is after until ({until})")
    stmt = select(DiaryEntry).where(DiaryEntry.member_id == member.id)
    if since:
        stmt = stmt.where(DiaryEntry.entry_date >= since.isoformat())
    if until:
        stmt = stmt.where(DiaryEntry.entry_date <= until.isoformat())
    stmt = stmt.order_by(DiaryEntry.entry_date.desc(), DiaryEntry.created_at.desc(), DiaryEntry.id.desc())
    with backend.db.read() as session:
        rows = list(session.exec(stmt.offset(offset).limit(limit + 1)))
    more = len(rows) > limit
    return EntryPage(entries=[entry_view(e) for e in rows[:limit]], next_offset=offset + limit if more else None)


def update_entry(backend: Backend, member: Member, entry_id: str, patch: EntryPatch) -> EntryOut:
    changes = patch.model_dump(exclude_unset=True)
    for required in ("text", "language", "entry_date"):
        if required in changes and changes[required] is None:
            raise Invalid(f"{required} cannot be cleared")
    if "text" in changes:
        _check_text(backend, changes["text"])
    if "entry_date" in changes:
        changes["entry_date"] = changes["entry_date"].isoformat()
    with backend.db.write() as session:
        entry = _own_entry(session, member, entry_id)
        _check_owned(session, member, Voice, changes.get("voice_id"), "voice")
        _check_owned(session, member, Job, changes.get("last_job_id"), "job")
        for name, value in changes.items():
            setattr(entry, name, value)
        entry.updated_at = now()
        session.add(entry)
        session.flush()
        return entry_view(entry)


def delete_entry(backend: Backend, member: Member, entry_id: str) -> None:
    with backend.db.write() as session:
        session.delete(_own_entry(session, member, entry_id))
