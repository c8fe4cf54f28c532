"""The embedded executor: dispatched jobs run one at a time in a thread of this very process.

Used by ``echodiary serve`` when no broker is configured, so the API works on a bare machine with
the same service layer, the same fairness rules and the same :func:`worker.runner.run_job`.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading

from shared import job_state, service
from shared.settings import Settings
from worker.runner import TransientError, run_job
from worker.sweeper import sweep_once

log = logging.getLogger(__name__)


class InlineExecutor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._queue: queue.PriorityQueue[tuple[int, int, str | None]] = queue.PriorityQueue()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self.backend = service.open_backend(settings, self.publish)

    def publish(self, dispatch: job_state.Dispatch) -> None:
        self._queue.put((dispatch.priority, next(self._seq), dispatch.job_id))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="echodiary-inline-worker", daemon=True)
        self._thread.start()
        # Jobs left queued by an earlier run of this process get their turn again.
        job_state.requeue_lost(self.backend.db, self.publish, redeliver_after_s=0,
                               max_attempts=self.settings.job_max_attempts)

    def stop(self) -> None:
        self._queue.put((-1, -1, None))
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        retries: dict[str, int] = {}
        while True:
            try:
                _, _, job_id = self._queue.get(timeout=self.settings.sweep_interval_s)
            except queue.Empty:
                try:
                    sweep_once(self.backend, redeliver_after_s=3600)
                except Exception:
                    log.warning("sweep failed", exc_info=True)
                continue
            if job_id is None:
                return
            try:
                run_job(self.backend, job_id)
                retries.pop(job_id, None)
            except TransientError:
                n = retries[job_id] = retries.get(job_id, 0) + 1
                if n <= self.settings.task_max_retries:
                    threading.Timer(min(2**n, 60), self._queue.put, ((0, next(self._seq), job_id),)).start()
            except Exception:
                log.exception("job %s crashed the inline worker loop", job_id)
