"""The household at a glance, for its admins: every member's use against the quotas, and invites.

Read-only figures from the same usage query the quotas are enforced with (:func:`shared.service.member_usage`),
so what the admin page shows is exactly what a member would be refused at.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from shared import service, web_sessions
from shared.service import Backend, NotFoundError
from shared.tables import Member, Voice, now

DAY_S = 24 * 3600


@dataclass(frozen=True)
class MemberUsage:
    member: Member
    active_jobs: int
    chars_today: int  # synthesised in the last 24 hours, the window of quota_chars_per_day
    storage_bytes: int
    voices: int


def usage(backend: Backend) -> list[MemberUsage]:
    """Every member, oldest first, with their use of each quota."""
    with backend.db.read() as session:
        members = session.exec(select(Member).order_by(Member.created_at)).scalars().all()
        voices = dict(session.exec(select(Voice.member_id, func.count()).group_by(Voice.member_id)).all())
        since = now() - DAY_S
        rows = []
        for member in members:
            active, chars, _oldest, stored = service.member_usage(session, member.id, since)
            rows.append(MemberUsage(member, active, chars, stored, int(voices.get(member.id, 0))))
    return rows


def invite(backend: Backend, member_id: str) -> tuple[str, float]:
    """A new one-time invite link for the member, and when it expires."""
    with backend.db.read() as session:
        if session.get(Member, member_id) is None:
            raise NotFoundError(f"no member {member_id}")
    code = web_sessions.create_invite(backend, member_id)
    return web_sessions.invite_link(backend, code), now() + web_sessions.INVITE_TTL_S
