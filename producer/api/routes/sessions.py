"""Web sign-in for the household page: a member token or a one-time invite code buys a session cookie."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field, model_validator

from producer.api.deps import BackendDep, CurrentMember
from shared import service, web_sessions
from shared.schemas import MemberOut
from shared.schemas import Request as Body

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])


class SessionCreate(Body):
    token: str | None = Field(None, min_length=1, description="A member's API token")
    invite: str | None = Field(None, min_length=1, description="A one-time invite code (from the invite link)")

    @model_validator(mode="after")
    def one_of(self) -> SessionCreate:
        if (self.token is None) == (self.invite is None):
            raise ValueError("send exactly one of token or invite")
        return self


class SessionOut(BaseModel):
    member: MemberOut
    csrf_token: str = Field(description="Echo it in the X-CSRF-Token header of every change.")


@router.post("", status_code=201, response_model=SessionOut, summary="Sign a browser in (sets the session cookie)")
def sign_in(body: SessionCreate, request: Request, response: Response, backend: BackendDep) -> SessionOut:
    member = None
    if body.token is not None:
        member = service.authenticate(backend, body.token)
        if member is None:
            raise HTTPException(401, "invalid API token")
    signed = web_sessions.sign_in(backend, member, body.invite)
    response.set_cookie(web_sessions.SESSION_COOKIE, signed.session_id, max_age=backend.settings.web_session_ttl_s,
                        httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/")
    return SessionOut(member=service.member_view(signed.member), csrf_token=signed.csrf_token)


def _cookie_session(request: Request, backend) -> tuple:  # noqa: ANN001
    raw = request.cookies.get(web_sessions.SESSION_COOKIE)
    found = web_sessions.session_member(backend, raw) if raw else None
    if found is None:
        raise HTTPException(401, "not signed in: POST /v1/sessions first")
    return raw, found


@router.get("/current", response_model=SessionOut, summary="This browser's session and its CSRF token")
def current(request: Request, backend: BackendDep) -> SessionOut:
    _, (member, web) = _cookie_session(request, backend)
    return SessionOut(member=service.member_view(member), csrf_token=web.csrf_token)


@router.delete("/current", status_code=204, summary="Sign this browser out")
def sign_out(request: Request, _member: CurrentMember, backend: BackendDep) -> Response:
    raw, _ = _cookie_session(request, backend)
    web_sessions.sign_out(backend, raw)
    response = Response(status_code=204)
    response.delete_cookie(web_sessions.SESSION_COOKIE, path="/")
    return response
