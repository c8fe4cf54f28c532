"""Request dependencies: the backend, and who is calling (``Depends(current_member)``)."""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared import service
from shared.service import Backend
from shared.tables import Member

bearer = HTTPBearer(auto_error=False, description="A member's API token (`echodiary members add`).")
UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def get_backend(request: Request) -> Backend:
    return request.app.state.backend


def current_member(credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                   backend: Backend = Depends(get_backend)) -> Member:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(401, "missing API token: send 'Authorization: Bearer <token>'", UNAUTHORIZED)
    member = service.authenticate(backend, credentials.credentials)
    if member is None:
        raise HTTPException(401, "invalid API token", UNAUTHORIZED)
    return member


def admin_member(member: Member = Depends(current_member)) -> Member:
    if not member.is_admin:
        raise HTTPException(403, "only a household admin can do this")
    return member


async def form_fields(request: Request) -> set[str]:
    """The names of the multipart fields sent (Starlette caches the parsed form)."""
    return set((await request.form()).keys())


def reject_unknown_fields(sent: set[str], allowed: set[str]) -> None:
    unknown = sorted(sent - allowed)
    if unknown:
        raise HTTPException(422, f"unknown fields: {', '.join(unknown)}; expected {', '.join(sorted(allowed))}")
