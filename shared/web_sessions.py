"""Browser sign-in: one-time invite codes and cookie sessions (random ids, stored hashed, sliding expiry)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from shared.service import Backend, Invalid, hash_token
from shared.tables import Member, MemberInvite, WebSession, now

INVITE_TTL_S = 7 * 24 * 3600
SESSION_COOKIE = "echodiary_session"
CSRF_HEADER = "X-CSRF-Token"


@dataclass
class SignedIn:
    member: Member
    session_id: str  # the raw id, for the cookie (never stored)
    csrf_token: str
    expires_at: float


def create_invite(backend: Backend, member_id: str) -> str:
    code = secrets.token_urlsafe(24)
    with backend.db.write() as session:
        session.add(MemberInvite(code_hash=hash_token(code), member_id=member_id, expires_at=now() + INVITE_TTL_S))
    return code


def invite_link(backend: Backend, code: str) -> str:
    base = (backend.settings.api_public_url or backend.settings.api_url).rstrip("/")
    return f"{base}/#invite={code}"


def _redeem_invite(backend: Backend, code: str) -> str | None:
    """The member id of a valid unused invite, marked used in the same transaction."""
    with backend.db.write() as session:
        invite = session.get(MemberInvite, hash_token(code))
        if invite is None or invite.used_at is not None or invite.expires_at <= now():
            return None
        invite.used_at = now()
        session.add(invite)
        return invite.member_id


def sign_in(backend: Backend, member: Member | None = None, invite: str | None = None) -> SignedIn:
    """A new web session for ``member`` (already authenticated by token) or the member of ``invite``."""
    if member is None:
        member_id = _redeem_invite(backend, invite or "")
        if member_id is None:
            raise Invalid("this invite code is unknown, expired or already used; ask an admin for a new one")
        with backend.db.read() as session:
            member = session.get(Member, member_id)
    raw, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = now() + backend.settings.web_session_ttl_s
    with backend.db.write() as session:
        session.add(WebSession(id_hash=hash_token(raw), member_id=member.id, csrf_token=csrf, expires_at=expires))
    return SignedIn(member, raw, csrf, expires)


def session_member(backend: Backend, raw_id: str) -> tuple[Member, WebSession] | None:
    """The member of a live session, whose expiry slides forward on each use."""
    with backend.db.write() as session:
        web = session.get(WebSession, hash_token(raw_id))
        if web is None or web.expires_at <= now():
            return None
        web.expires_at = now() + backend.settings.web_session_ttl_s
        session.add(web)
        member = session.get(Member, web.member_id)
        return (member, web) if member is not None else None


def sign_out(backend: Backend, raw_id: str) -> None:
    with backend.db.write() as session:
        web = session.get(WebSession, hash_token(raw_id))
        if web is not None:
            session.delete(web)
