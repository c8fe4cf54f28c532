"""Request dependencies, as ``Annotated`` aliases a route names as a parameter's type.

    def get_voice(voice_id: str, member: CurrentMember, backend: BackendDep) -> VoiceOut: ...
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared import service
from shared.service import Backend
from shared.tables import Member

bearer = HTTPBearer(auto_error=False, description="A member's API token (`echodiary members add`).")
UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def get_backend(request: Request) -> Backend:
    return request.app.state.backend


BackendDep = Annotated[Backend, Depends(get_backend)]


def current_member(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                   backend: BackendDep) -> Member:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(401, "missing API token: send 'Authorization: Bearer <token>'", UNAUTHORIZED)
    member = service.authenticate(backend, credentials.credentials)
    if member is None:
        raise HTTPException(401, "invalid API token", UNAUTHORIZED)
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
