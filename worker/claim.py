"""Holding a job: the claim (our attempt number) and the lease a heartbeat thread keeps renewing.

If this process dies the heartbeat stops, the lease runs out, and another worker's sweep queues the
job again. If the lease is lost while we are still alive (a long stall, or the job was deleted or
taken over), :meth:`Lease.check` raises :class:`LostJob` and we stop without writing a result.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from shared import job_state
from shared.db import Database

log = logging.getLogger(__name__)


class LostJob(Exception):
    """The job is no longer ours: another attempt owns it, or it was deleted or finished."""


def claim(db: Database, job_id: str, worker: str, lease_s: float, max_attempts: int | None = None,
          resume_own: bool = False) -> int | None:
    with db.write() as session:
        return job_state.claim(session, job_id, worker, lease_s, max_attempts, resume_own)


class Lease:
    def __init__(self, db: Database, job_id: str, attempt: int, lease_s: float,
                 heartbeat_s: float | None = None) -> None:
        self.db, self.job_id, self.attempt, self.lease_s = db, job_id, attempt, lease_s
        # Renew at least three times per lease, so one slow or failed renewal does not lose it.
        self.heartbeat_s = min(heartbeat_s or lease_s, lease_s / 3)
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{job_id[:8]}", daemon=True)

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                with self.db.write() as session:
                    if not job_state.renew(session, self.job_id, self.attempt, self.lease_s):
                        self.lost = True
                        return
            except Exception:  # the database may be back at the next beat; the lease has slack
                log.warning("could not renew the lease of job %s", self.job_id, exc_info=True)

    def check(self) -> None:
        if self.lost:
            raise LostJob(self.job_id)
