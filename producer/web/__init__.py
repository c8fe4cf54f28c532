"""The household web page: plain HTML, CSS and ES modules in ``static/``, served by the API itself.

Same origin as the API, so the session cookie (SameSite=Strict) and the CSRF header are all a page
needs; no CDN and no build step, so it works offline on the household network. Every response
carries strict security headers; the page's CSP allows only this origin (no inline script).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"

# 'self' only: scripts, styles, workers (AudioWorklet modules) and fetches from this origin; audio from
# this origin or blob: URLs the page makes itself (MediaSource, the finished file); never framed.
PAGE_CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
# FastAPI's /docs and /redoc pages load Swagger/ReDoc from a CDN with inline script: they keep their
# own way; everything else (the page, its assets, the JSON API) gets the strict policy.
DOC_PATHS = ("/docs", "/redoc")
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
}


def security_headers(path: str) -> dict[str, str]:
    """The headers every response to ``path`` carries."""
    headers = dict(COMMON_HEADERS)
    if not path.startswith(DOC_PATHS):
        headers["Content-Security-Policy"] = PAGE_CSP
    return headers


class SecurityHeaders:
    """Pure ASGI middleware (no response buffering, so streamed audio passes through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in security_headers(path).items():
                    headers.setdefault(name, value)
                if path == "/" or path.startswith("/static/"):
                    # Revalidate on each load (ETag): an upgraded server's page is seen at once.
                    headers.setdefault("Cache-Control", "no-cache")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def mount(app: FastAPI) -> None:
    """Serve the page at ``/`` and its assets under ``/static/``, with the security headers."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    app.add_middleware(SecurityHeaders)
