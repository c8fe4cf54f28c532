"""Per-chunk progress: chunks done/total and a row per finished chunk, written as the engine goes."""

from __future__ import annotations

import time
from collections.abc import Callable

from shared import job_state
from worker.claim import Lease, LostJob


def progress_writer(lease: Lease, chunk_delay_s: float = 0.0) -> Callable[[int, int], None]:
    """The ``on_progress(done, total)`` callback for one attempt of one job."""

    def on_progress(done: int, total: int) -> None:
        lease.check()
        with lease.db.write() as session:
            if not job_state.record_progress(session, lease.job_id, lease.attempt, done, total, lease.lease_s):
                raise LostJob(lease.job_id)
        if chunk_delay_s and done < total:
            time.sleep(chunk_delay_s)

    return on_progress
