"""The faults, one per scenario. Each ``inject`` runs while a batch of jobs is in flight and returns
when the fault is over (the killed process gone, the restarted server answering again): that moment
is when the clock for "time to recover" starts.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from ops.chaos.stack import ChaosStack
from shared.tables import RUNNING, Job

S3_OUTAGE_S = 60.0
POSTGRES_DOWN_S = 5.0


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    inject: Callable[[ChaosStack, list[str]], None]
    poison: bool = False  # the batch carries one job that kills its worker on every attempt


def _running_job(stack: ChaosStack, job_ids: list[str], timeout_s: float = 120) -> Job:
    """A job of the batch that is running on one of our live workers, with a chunk done (mid-job)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for row in stack.jobs(job_ids).values():
            if row.status == RUNNING and row.progress_done >= 1 and row.worker and stack.worker_of(row.worker):
                return row
        time.sleep(0.1)
    raise RuntimeError(f"no job of the batch was running mid-way within {timeout_s:.0f} s")


def kill_worker_main(stack: ChaosStack, job_ids: list[str]) -> None:
    holder = stack.worker_of(_running_job(stack, job_ids).worker)
    stack.kill_worker_main(holder)
    stack.start_worker()  # as systemd or compose would restart it


def kill_pool_child(stack: ChaosStack, job_ids: list[str]) -> None:
    pid = int(_running_job(stack, job_ids).worker.split(":")[1])  # "<node name>:<pool pid>:<task id>"
    os.kill(pid, signal.SIGKILL)


def restart_redis(stack: ChaosStack, job_ids: list[str]) -> None:
    _running_job(stack, job_ids)
    stack.redis.stop(signal.SIGTERM)  # a clean stop writes the append-only file: queued messages stay
    stack.redis.start()


def restart_redis_losing_messages(stack: ChaosStack, job_ids: list[str]) -> None:
    _running_job(stack, job_ids)
    stack.redis.stop(signal.SIGKILL)
    stack.redis.forget_everything()  # as a Redis without persistence: every queued and unacked message is gone
    stack.redis.start()


def stop_s3(stack: ChaosStack, job_ids: list[str], outage_s: float = S3_OUTAGE_S) -> None:
    _running_job(stack, job_ids)
    stack.s3.stop(signal.SIGTERM)
    time.sleep(outage_s)
    stack.s3.start()


def restart_postgres(stack: ChaosStack, job_ids: list[str]) -> None:
    _running_job(stack, job_ids)
    stack.postgres.stop(signal.SIGINT)  # PostgreSQL's fast shutdown: open connections are cut
    time.sleep(POSTGRES_DOWN_S)
    stack.postgres.start()


def poison(stack: ChaosStack, job_ids: list[str]) -> None:
    """Nothing to do: the poison job kills its worker itself. The fault is over once it has failed."""
    from shared.tables import FAILED, SUCCEEDED

    poisoned = job_ids[0]
    deadline = time.monotonic() + 300
    while (row := stack.jobs([poisoned]).get(poisoned)) is None or row.status not in (FAILED, SUCCEEDED):
        if time.monotonic() > deadline:
            raise RuntimeError("the poison job neither failed nor succeeded within 300 s")
        time.sleep(0.2)


SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    Scenario("kill-worker", "kill -9 of a worker's main process (restarted at once)", kill_worker_main),
    Scenario("kill-pool-child", "kill -9 of the pool process rendering a job", kill_pool_child),
    Scenario("redis-restart", "Redis restarted, its append-only file kept", restart_redis),
    Scenario("redis-lose", "Redis killed and restarted empty: queued and in-flight messages lost",
             restart_redis_losing_messages),
    Scenario("s3-outage", f"the S3 server stopped for {S3_OUTAGE_S:.0f} s", stop_s3),
    Scenario("postgres-restart", f"PostgreSQL shut down (fast) for {POSTGRES_DOWN_S:.0f} s and started",
             restart_postgres),
    Scenario("poison", "a job that kills its worker process on every attempt", poison, poison=True),
]}
SHORT = ["kill-pool-child", "redis-lose", "postgres-restart"]
