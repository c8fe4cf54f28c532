"""The periodic sweep every worker runs beside its tasks, in a thread of the main process.

Each pass: queue again the jobs whose worker vanished (lease ran out) and re-publish dispatches
whose message was lost; dispatch waiting jobs of every member (in case a dispatch was missed);
delete expired results. Every step is an atomic UPDATE, so several workers sweeping at once do
each piece of work once.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import bootsteps

from shared import job_state, service
from worker.messages import publisher

log = logging.getLogger(__name__)
CLEANUP_EVERY_S = 300.0


def sweep_once(backend: service.Backend, redeliver_after_s: float, cleanup: bool = True) -> dict[str, int]:
    requeued = job_state.requeue_lost(backend.db, backend.publish, redeliver_after_s, backend.settings.job_max_attempts)
    dispatched = job_state.dispatch_all(backend.db, backend.publish, backend.settings.member_concurrency)
    service.clear_ended_chunks(backend)  # failed and cancelled jobs' chunks, soon after they end
    expired = service.cleanup_expired(backend) if cleanup else 0
    if requeued or expired:
        log.info("sweep: %d jobs requeued, %d dispatched, %d results expired",
                 len(requeued), len(dispatched), expired)
    return {"requeued": len(requeued), "dispatched": len(dispatched), "expired": expired}


class SweeperStep(bootsteps.StartStopStep):
    """A worker bootstep: starts the sweep thread when the worker starts, stops it on shutdown."""

    def __init__(self, worker, **kwargs) -> None:  # noqa: ANN001, ANN003
        super().__init__(worker, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, worker) -> None:  # noqa: ANN001
        self._thread = threading.Thread(target=self._loop, args=(worker.app,), name="echodiary-sweeper",
                                        daemon=True)
        self._thread.start()

    def stop(self, worker) -> None:  # noqa: ANN001
        self._stop.set()

    def _loop(self, app) -> None:  # noqa: ANN001
        settings = app.settings
        backend = None
        last_cleanup = 0.0
        while not self._stop.wait(settings.sweep_interval_s):
            try:
                if backend is None:
                    backend = service.open_backend(settings, publisher(app))
                cleanup = time.monotonic() - last_cleanup >= CLEANUP_EVERY_S
                sweep_once(backend, settings.redispatch_after_s, cleanup=cleanup)
                if cleanup:
                    last_cleanup = time.monotonic()
            except Exception:
                log.warning("sweep failed; trying again in %.0f s", settings.sweep_interval_s, exc_info=True)
