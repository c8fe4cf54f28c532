"""Every error leaves the API as ``{"detail": "<a sentence a person can act on>"}``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from producer.error_status import status_for
from shared.service import QuotaExceeded, ServiceError


class ErrorOut(BaseModel):
    detail: str


# Documented on every route, so clients (and schema checkers) know every answer they can get.
ERROR_RESPONSES: dict[int | str, dict] = {
    code: {"model": ErrorOut, "description": description} for code, description in (
        (401, "No token, or a wrong or revoked one"),
        (403, "Not allowed (an admin's action, or storage full)"),
        (404, "No such thing of yours"),
        (409, "Conflicts with the current state (already exists, already finished, key reused)"),
        (413, "Upload larger than the limit"),
        (415, "Upload is not audio we accept"),
        (422, "Invalid request"),
        (429, "Quota reached; see Retry-After"),
        (503, "A service the API needs is unavailable; try again shortly"),
    )
}


def _where(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or "request"


def headers_for(exc: ServiceError) -> dict[str, str]:
    """The headers a refusal carries: when to try again, for a quota."""
    if isinstance(exc, QuotaExceeded):
        return {"Retry-After": str(exc.retry_after_s)}
    return {}


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=status_for(exc), headers=headers_for(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = _where(tuple(err.get("loc", ())))
            message = "unknown field" if err.get("type") == "extra_forbidden" else err.get("msg", "invalid")
            problems.append(f"{where}: {message}")
        return JSONResponse({"detail": "invalid request: " + "; ".join(problems)}, status_code=422)
