"""Request dependencies, as ``Annotated`` aliases a route names as a parameter's type.

    def get_voice(voice_id: str, member: CurrentMember, backend: BackendDep) -> VoiceOut: ...
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared import service, web_sessions
from shared.service import Backend
from shared.tables import Member

bearer = HTTPBearer(auto_error=False, description="A member's API token (`echodiary members add`).")
UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def get_backend(request: Request) -> Backend:
    return request.app.state.backend


BackendDep = Annotated[Backend, Depends(get_backend)]


def current_member(request: Request,
                   credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                   backend: BackendDep) -> Member:
    if credentials is None and request.cookies.get(web_sessions.SESSION_COOKIE):
        return cookie_member(request, backend)
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(401, "missing API token: send 'Authorization: Bearer <token>'", UNAUTHORIZED)
    member = service.authenticate(backend, credentials.credentials)
    if member is None:
        raise HTTPException(401, "invalid API token", UNAUTHORIZED)
    return member


def cookie_member(request: Request, backend: Backend) -> Member:
    """A browser's member; a state-changing request must echo the session's CSRF token (double submit)."""
    found = web_sessions.session_member(backend, request.cookies[web_sessions.SESSION_COOKIE])
    if found is None:
        raise HTTPException(401, "your web session has expired or was signed out: sign in again")
    member, web = found
    sent = request.headers.get(web_sessions.CSRF_HEADER, "")
    if request.method in STATE_CHANGING and not secrets.compare_digest(sent, web.csrf_token):
        raise HTTPException(403, f"missing or wrong {web_sessions.CSRF_HEADER} header: send the csrf_token "
                                 "from GET /v1/sessions/current with every change")
    return member


CurrentMember = Annotated[Member, Depends(current_member)]


def admin_member(member: CurrentMember) -> Member:
    if not member.is_admin:
        raise HTTPException(403, "only a household admin can do this")
    return member


AdminMember = Annotated[Member, Depends(admin_member)]


async def form_fields(request: Request) -> set[str]:
    """The names of the multipart fields sent (Starlette caches the parsed form)."""
    return set((await request.form()).keys())


FormFields = Annotated[set[str], Depends(form_fields)]


def reject_unknown_fields(sent: set[str], allowed: set[str]) -> None:
    unknown = sorted(sent - allowed)
    if unknown:
        raise HTTPException(422, f"unknown fields: {', '.join(unknown)}; expected {', '.join(sorted(allowed))}")
