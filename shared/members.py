"""Household members for the operator: list them, revoke a member's access, remove a member entirely.

Removal walks the tables by their foreign keys, so a table added later that points at a member (or at
a row that does) is cleared with them without this module knowing it; every object the member owns
lives under their storage prefix.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import SQLModel

from shared import keys
from shared.service import TOKEN_PREFIX, Backend, Conflict, NotFoundError, hash_token, storage_used
from shared.tables import ApiToken, Job, Member, MemberInvite, Voice, WebSession, now


@dataclass(frozen=True)
class MemberSummary:
    member_id: str
    name: str
    admin: bool
    created_at: float
    voices: int
    jobs: int
    storage_bytes: int
    active_tokens: int
    web_sessions: int


def _count(session, model, *where) -> int:  # noqa: ANN001 - a sqlmodel Session and table class
    return int(session.exec(select(func.count()).select_from(model).where(*where)).one()[0])


def list_members(backend: Backend) -> list[MemberSummary]:
    """Every member, oldest first, with what they hold."""
    with backend.db.read() as session:
        members = session.exec(select(Member).order_by(Member.created_at)).scalars().all()
        return [MemberSummary(
            member_id=m.id, name=m.name, admin=m.is_admin, created_at=m.created_at,
            voices=_count(session, Voice, Voice.member_id == m.id),
            jobs=_count(session, Job, Job.member_id == m.id),
            storage_bytes=storage_used(session, m.id),
            active_tokens=_count(session, ApiToken, ApiToken.member_id == m.id, ApiToken.revoked.is_(False)),
            web_sessions=_count(session, WebSession, WebSession.member_id == m.id, WebSession.expires_at > now()),
        ) for m in members]


def find_member(backend: Backend, name_or_id: str) -> Member:
    """The member with this name (or id); NotFoundError says who exists otherwise."""
    wanted = name_or_id.strip()
    with backend.db.read() as session:
        member = session.exec(select(Member).where((Member.name == wanted) | (Member.id == wanted))).scalars().first()
    if member is None:
        raise NotFoundError(f"no member named {wanted!r}; `echodiary members list` shows them")
    return member


def revoke_access(backend: Backend, member_id: str, new_token: bool = True) -> str | None:
    """Revoke every API token, end every browser session and drop unused invites of a member.

    Returns a fresh token (shown once; only its hash is kept) unless ``new_token`` is false.
    """
    token = TOKEN_PREFIX + secrets.token_urlsafe(32) if new_token else None
    with backend.db.write() as session:
        session.exec(update(ApiToken).where(ApiToken.member_id == member_id).values(revoked=True))
        session.exec(delete(WebSession).where(WebSession.member_id == member_id))
        session.exec(delete(MemberInvite).where(MemberInvite.member_id == member_id))
        if token:
            session.add(ApiToken(member_id=member_id, token_hash=hash_token(token)))
    return token


def _owned_by(table: Table, member_id: str, memo: dict[str, ColumnElement[bool] | None]) -> ColumnElement[bool] | None:
    """A condition selecting the rows of ``table`` that belong to the member, through foreign keys."""
    if table.name in memo:
        return memo[table.name]
    memo[table.name] = None  # a cycle of foreign keys ends here
    member = Member.__table__
    condition = None
    for fk in table.foreign_keys:
        parent = fk.column.table
        if parent is member:
            clause = fk.parent == member_id
        else:
            parent_rows = _owned_by(parent, member_id, memo)
            if parent_rows is None:
                continue
            clause = fk.parent.in_(select(fk.column).where(parent_rows))
        condition = clause if condition is None else condition | clause
    memo[table.name] = condition
    return condition


def _delete_rows(backend: Backend, member_id: str) -> int:
    memo: dict[str, ColumnElement[bool] | None] = {}
    deleted = 0
    with backend.db.write() as session:
        for table in reversed(SQLModel.metadata.sorted_tables):  # children before their parents
            if table is Member.__table__:
                continue
            condition = _owned_by(table, member_id, memo)
            if condition is not None:
                deleted += session.exec(delete(table).where(condition)).rowcount or 0
        deleted += session.exec(delete(Member.__table__).where(Member.__table__.c.id == member_id)).rowcount or 0
    return deleted


@dataclass(frozen=True)
class Removed:
    rows: int
    objects: int


def remove_member(backend: Backend, member_id: str, acting_member_id: str | None = None) -> Removed:
    """Delete a member with all their voices, jobs, entries, sessions and stored objects.

    Objects go first, so an interrupted removal can be run again while the member still exists; a
    second sweep takes anything a running job wrote meanwhile (it stops at its next chunk, its row gone).
    """
    if member_id == acting_member_id:
        raise Conflict("you cannot remove yourself; ask another admin, or use `echodiary members rm`")
    prefix = keys.member_prefix(member_id)
    objects = backend.storage.delete_prefix(prefix)
    rows = _delete_rows(backend, member_id)
    objects += backend.storage.delete_prefix(prefix)
    return Removed(rows=rows, objects=objects)
