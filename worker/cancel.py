"""Cancellation: a flag in the job's row, read between chunks (never ``revoke(terminate=True)``)."""

from __future__ import annotations

import time
from collections.abc import Callable

from shared import job_state
from worker.claim import Lease

MIN_INTERVAL_S = 0.2  # the engine may ask often; one small read per interval is plenty


def cancel_checker(lease: Lease) -> Callable[[], bool]:
    """``should_cancel()`` for the engine: True once the member cancelled or the job is not ours."""
    state = {"at": 0.0, "answer": False}

    def should_cancel() -> bool:
        if state["answer"] or lease.lost:
            return True
        t = time.monotonic()
        if t - state["at"] >= MIN_INTERVAL_S:
            state["at"] = t
            with lease.db.read() as session:
                state["answer"] = job_state.cancel_wanted(session, lease.job_id, lease.attempt)
        return bool(state["answer"])

    return should_cancel
