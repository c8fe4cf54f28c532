"""Interactive requests never wait behind a diary: a background render pauses for them mid-batch.

On a household with one GPU worker (concurrency 1), the broker serves the interactive lane first
(priority 0 against 6; the embedded executor's queue is ordered the same way), but only once the
worker is free. So a background synthesis hands the engine a *pause point* (see
:data:`engine.rendering.planning.PausePoint`), which the render calls between decoding steps and
vocoder windows. At most every ``PAUSE_CHECK_S`` it asks the database whether an interactive job
waits on this job's queue; if one does, it runs that job right there, in this process and thread,
on the models already loaded, through the same :func:`worker.runner.run_job` as any delivery
(its own claim, lease, progress, stream and result), then returns and the diary's decode goes on
exactly where it was: no work is lost or repeated, the diary's stream only pauses. When the
broker later delivers the job's message, the exactly-once claim finds it done and skips it.

The paused diary keeps its own claim: its lease's heartbeat thread keeps renewing it while the
inline job runs, its attempt stays the same and nothing is counted against it. After serving, the
diary renders for at least ``PAUSE_CHECK_S`` before it looks again, so a steady stream of
interactive requests slows a diary down but never stops it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from shared import job_state
from shared.tables import BACKGROUND, Job
from worker.claim import Lease

log = logging.getLogger(__name__)
PAUSE_CHECK_S = 0.25  # the longest an interactive job waits for a pause point to look (one small read)
RunJob = Callable[[str], str]  # run_job for one job id -> its outcome


def pause_point(lease: Lease, job: Job, enabled: bool, run: RunJob) -> Callable[[], None] | None:
    """The engine's ``pause_point`` for a synthesis: only for a background job, only when
    ``enabled`` (``ECHODIARY_YIELD_TO_INTERACTIVE``), else None (it never pauses)."""
    if not enabled or job.lane != BACKGROUND:
        return None
    state = {"at": time.monotonic()}

    def pause() -> None:
        if time.monotonic() - state["at"] < PAUSE_CHECK_S or lease.lost:
            return
        serve_waiting(lease, job, run)
        state["at"] = time.monotonic()  # counted after serving: the diary gets its turn too

    return pause


def serve_waiting(lease: Lease, job: Job, run: RunJob) -> int:
    """Run every interactive job now waiting on ``job``'s queue, oldest first; how many ran.

    A job this process cannot claim (another worker took it first) or that fails to run is not
    offered again during this pause. Nothing here stops the paused job: an error only ends the pause.
    """
    served: set[str] = set()
    while True:
        try:
            with lease.db.read() as session:
                waiting = job_state.next_interactive(session, job.queue, skip=served)
        except Exception:  # the database is away: the paused job finds out at its own next write
            log.warning("job %s: cannot look for waiting interactive jobs", job.id, exc_info=True)
            return len(served)
        if waiting is None:
            return len(served)
        served.add(waiting)
        try:
            outcome = run(waiting)
        except Exception:  # e.g. a transient error: it was given back, and its message brings it again
            log.warning("interactive job %s, run while job %s paused, did not finish", waiting, job.id, exc_info=True)
            return len(served)
        log.info("interactive job %s ran while background job %s paused: %s", waiting, job.id, outcome)
