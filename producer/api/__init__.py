"""The EchoDiary HTTP API: thin routes over :mod:`shared.service`, documented at ``/docs``.

``create_app(settings)`` wires the backend: in server mode jobs are published to Celery; with no
broker configured (embedded) they run in a thread of the API process itself.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from producer import web
from producer.api import errors
from producer.api.limits import BodyLimit
from producer.api.routes import (
    enrollment,
    entries,
    files,
    health,
    household,
    jobs,
    members,
    openai_speech,
    sessions,
    styles,
    syntheses,
    voices,
    watermark,
)
from shared.service import Backend, open_backend
from shared.settings import Settings, get_settings
from shared.storage import S3Storage

log = logging.getLogger(__name__)

DESCRIPTION = """Your diary, read back in your own voice.

Authenticate with `Authorization: Bearer <token>` (an admin creates members with `POST /v1/members`
or `echodiary members add`). Work happens in jobs: upload a voice, queue syntheses, poll
`GET /v1/jobs/{id}` for progress and a download link that expires. Errors are `{"detail": "..."}`;
another member's voices and jobs answer 404, exactly like missing ones."""


def create_app(settings: Settings | None = None, backend: Backend | None = None) -> FastAPI:
    settings = settings or get_settings()
    executor = None
    if backend is None:
        if settings.embedded:
            from worker.inline import InlineExecutor

            executor = InlineExecutor(settings)
            backend = executor.backend
        else:
            from worker.app import make_celery
            from worker.messages import publisher

            backend = open_backend(settings, publisher(make_celery(settings)))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if isinstance(backend.storage, S3Storage):
            try:
                backend.storage.ensure_bucket()
            except Exception:
                log.warning("could not check the S3 bucket %s", settings.s3_bucket, exc_info=True)
        if executor is not None:
            executor.start()
        yield
        if executor is not None:
            executor.stop()

    app = FastAPI(title="EchoDiary", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.backend = backend
    errors.install(app)
    for module in (members, voices, styles, enrollment, syntheses, jobs, files, watermark, health, entries, sessions,
                   household, openai_speech):
        app.include_router(module.router, responses=errors.ERROR_RESPONSES)
    web.mount(app)  # the household page at /, in embedded and server mode alike
    # Room for the largest upload plus the multipart framing around it.
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes + 1024 * 1024)
    return app
