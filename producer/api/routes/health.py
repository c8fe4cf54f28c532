"""Liveness and the state of the services the API depends on."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import text

from producer.api.deps import BackendDep
from shared import readiness
from shared.schemas import Health, WorkerReadiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Is the API up, and can it reach its services?")
def healthz(response: Response, backend: BackendDep) -> Health:
    settings = backend.settings
    try:
        with backend.db.read() as session:
            session.exec(text("SELECT 1"))
        database = True
    except Exception:
        database = False
    try:
        backend.storage.check()
        storage = True
    except Exception:
        storage = False
    broker, workers = None, None
    if settings.broker_url:
        try:
            readiness.client(settings).ping()
            broker = True
            workers = [WorkerReadiness.model_validate(w) for w in readiness.read_all(settings)]
        except Exception:
            broker = False
    g2pw = (settings.g2pw_dir or settings.models_dir / "G2PWModel").is_dir()
    ok = database and storage and broker is not False
    if not ok:
        response.status_code = 503
    return Health(status="ok" if ok else "degraded", mode="embedded" if settings.embedded else "server",
                  database=database, storage=storage, broker=broker, chinese_reader="g2pw" if g2pw else "pypinyin",
                  workers=workers)
