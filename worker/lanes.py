"""Interactive requests never wait behind a diary: a background render gives way between batches.

On a household with one GPU worker (concurrency 1), the broker serves the interactive lane first
(priority 0 against 6; the embedded executor's queue is ordered the same way), but only once the
worker is free. So a background synthesis asks, before each batch of chunks, whether an
interactive job waits on its queue; if one does it raises :class:`engine.errors.Yielded`. Its
finished chunks are already in the chunk cache, :func:`worker.runner.run_job` puts the job back
to queued (no crash counted) and publishes it again behind the interactive work, and the next
attempt renders only the chunks that are left.

Every attempt renders at least one batch before it may give way, so a steady stream of
interactive requests slows a diary down but never stops it.
"""

from __future__ import annotations

from collections.abc import Callable

from shared import job_state
from shared.tables import BACKGROUND, Job
from worker.cancel import cancel_checker
from worker.claim import Lease


def stop_checker(lease: Lease, job: Job, give_way: bool) -> Callable[[], bool]:
    """``should_cancel()`` for a synthesis: True to cancel; raises ``Yielded`` to give way (only a
    background job, only when ``give_way``, and not before its first batch)."""
    from engine.errors import Yielded

    cancelled = cancel_checker(lease)
    if not give_way or job.lane != BACKGROUND:
        return cancelled
    calls = {"n": 0}

    def should_stop() -> bool:
        if cancelled():
            return True
        calls["n"] += 1
        if calls["n"] > 1 and interactive_waiting(lease, job.queue):
            raise Yielded(f"job {job.id} gives way to interactive work")
        return False

    return should_stop


def interactive_waiting(lease: Lease, queue: str) -> bool:
    with lease.db.read() as session:
        return job_state.interactive_waiting(session, queue)
