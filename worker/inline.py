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
from worker.outage import gave_up_message, retry_delay
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

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._thread = threading.Thread(target=self._loop, name="echodiary-inline-worker", daemon=True)
        self._thread.start()
        # Jobs left queued by an earlier run of this process get their turn again.
        job_state.requeue_lost(self.backend.db, self.publish, redeliver_after_s=0,
                               max_attempts=self.settings.job_max_attempts)

    def stop(self) -> None:
        self._queue.put((-1, -1, None))
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _retry_later(self, job_id: str, retries: dict[str, int], exc: TransientError) -> None:
        """Wait out an outage (see :mod:`worker.outage`); fail the job once the window is spent."""
        n = retries.get(job_id, 0)
        delay = retry_delay(self.settings, n)
        if delay is None:
            retries.pop(job_id, None)
            try:
                with self.backend.db.write() as session:
                    job_state.fail_queued(session, job_id, gave_up_message(self.settings, exc))
            except Exception:  # still down: the job stays queued and the sweep publishes it again
                log.warning("could not fail job %s", job_id, exc_info=True)
            return
        retries[job_id] = n + 1
        threading.Timer(delay, self._queue.put, ((0, next(self._seq), job_id),)).start()

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
            except TransientError as exc:
                self._retry_later(job_id, retries, exc)
            except Exception:
                log.exception("job %s crashed the inline worker loop", job_id)
