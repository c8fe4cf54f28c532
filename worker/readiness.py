"""Warm start and readiness: each worker process loads and warms the models as it starts, and says
so in Redis (:mod:`shared.readiness`), where ``/healthz`` and Flower (the worker's ``stats``) read it.

A heartbeat thread writes the process's record again every ``worker_ready_heartbeat_s``. Voice
profiles then stay warm per process in :class:`worker.pipeline.WarmCache`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from celery import bootsteps
from celery.signals import celeryd_init

from shared import readiness
from shared.readiness import FAILED, LOADING, READY
from shared.service import Backend
from shared.settings import Settings

log = logging.getLogger(__name__)
_node = {"name": "worker"}  # the Celery node name, set in the main process before the pool forks


class Reporter:
    """This process's readiness record, written now and at every beat until the process ends."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.settings, self.name = settings, name
        self.key = readiness.key(name)
        self.record: dict[str, Any] = {"name": name, "state": LOADING, "models": str(settings.models_dir),
                                       "device": settings.device, "since": time.time(), "warm_up": settings.worker_warmup}
        self._redis = readiness.client(settings)

    def set(self, state: str, **extra: Any) -> None:  # noqa: ANN401
        self.record.update(state=state, since=time.time(), **extra)
        self.write()

    def write(self) -> None:
        try:
            self._redis.set(self.key, json.dumps(self.record), ex=readiness.ttl_s(self.settings))
        except redis.RedisError:  # the next beat tries again
            log.warning("could not report the readiness of %s", self.name, exc_info=True)

    def beat_forever(self) -> None:
        while True:
            time.sleep(self.settings.worker_ready_heartbeat_s)
            self.write()


def process_name() -> str:
    """This pool process's name in the readiness records: the Celery node and the pid."""
    return f"{_node['name']}:{os.getpid()}"


def start(settings: Settings, name: str, backend: Callable[[], Backend]) -> Reporter:
    """Report ``loading``, then warm up and report ``ready`` (or ``failed``), in a thread: Celery
    gives a new pool process only a few seconds to finish its init signal. ``backend`` opens this
    process's database and storage (for the recently used voices)."""
    reporter = Reporter(settings, name)
    reporter.write()

    def run() -> None:
        from worker import pipeline

        t0 = time.perf_counter()
        try:
            if settings.worker_warmup:
                pipeline.warm_up(settings)
                reporter.record["matmul"] = pipeline.get_engine(settings).models.matmul_mode
                reporter.record["voices_warmed"] = _warm_voices_or_none(settings, backend)
            reporter.set(READY, warm_up_s=round(time.perf_counter() - t0, 3))
        except Exception as exc:  # jobs still run: they load the models themselves, and say why not
            log.exception("warm-up failed")
            reporter.set(FAILED, error=f"{type(exc).__name__}: {exc}"[:500])
        reporter.beat_forever()

    threading.Thread(target=run, name="echodiary-warm-up", daemon=True).start()
    return reporter


def warm_recent_voices(settings: Settings, backend: Backend) -> int:
    """Load the profiles of the voices synthesised with most recently into this process's warm
    cache (up to its size), so a restart does not make their next request slower. Returns how many."""
    from sqlalchemy import func, select

    from shared.tables import READY as VOICE_READY
    from shared.tables import SYNTHESIS, Job, Voice
    from worker import pipeline

    storage = backend.storage
    last_used = func.max(Job.created_at)
    with backend.db.read() as session:
        rows = session.exec(
            select(Voice.id, Voice.profile_key).join(Job, Job.voice_id == Voice.id)
            .where(Job.kind == SYNTHESIS, Voice.status == VOICE_READY, Voice.profile_key.is_not(None))
            .group_by(Voice.id, Voice.profile_key).order_by(last_used.desc()).limit(settings.profile_cache_size)
        ).all()
    for voice_id, key in reversed(rows):  # the most recent last: it stays longest in the LRU
        pipeline.load_profile(settings, voice_id, key, lambda key=key: storage.get(key))
    return len(rows)


def _warm_voices_or_none(settings: Settings, backend: Callable[[], Backend]) -> int | None:
    """Warm voices are a bonus: a database or storage hiccup leaves the worker ready without them."""
    try:
        return warm_recent_voices(settings, backend())
    except Exception:
        log.warning("could not preload recently used voices", exc_info=True)
        return None


@celeryd_init.connect
def _remember_node(sender: str | None = None, **_: Any) -> None:  # noqa: ANN401
    _node["name"] = sender or _node["name"]


class ReadinessStep(bootsteps.StartStopStep):
    """Adds this node's processes' readiness to the worker's ``stats`` (Flower's worker page)."""

    def info(self, worker) -> dict[str, Any]:  # noqa: ANN001
        try:
            return {"echodiary": {"processes": readiness.read_all(worker.app.settings, worker.hostname)}}
        except redis.RedisError:
            return {"echodiary": {"processes": "unknown: Redis unreachable"}}
