"""The Celery application: Redis broker, late acks, one task at a time, a `gpu` and a `cpu` queue.

Start a worker with ``echodiary worker`` (or ``celery -A worker.app worker``). What makes a lost
job come back quickly rather than after minutes:

* ``acks_late`` + ``task_reject_on_worker_lost``: a pool child killed mid-job puts its message back
  at once;
* a visibility timeout longer than the longest task (a task outliving it would be delivered again
  while still running), and an unacked-restore sweep every couple of seconds instead of kombu's
  default 10 s x 10;
* a broker connection loss leaves the running job running (its late ack is lost, and its message
  may come again: the claim refuses the copy);
* on top of the broker, our own lease on the job row, renewed every ``job_heartbeat_s``: a worker
  that vanished entirely is noticed by any other worker's sweep within ``job_lease_s`` +
  ``sweep_interval_s`` and its job is queued again (see :mod:`worker.sweeper`).

Each pool process loads and warms the models as it starts and reports its readiness
(:mod:`worker.readiness`). Interactive jobs go to the same ``gpu`` queue with a higher priority,
and a background render pauses mid-batch to run them inline (:mod:`worker.lanes`).
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from shared.settings import Settings, get_settings
from worker.messages import CLEANUP_TASK, CPU, GPU, TASK_FOR_KIND, visibility_timeout
from worker.readiness import ReadinessStep
from worker.sweeper import SweeperStep


def make_celery(settings: Settings) -> Celery:
    app = Celery("echodiary", broker=settings.broker_url or "memory://", include=["worker.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # A broker restart must not kill the job being rendered: cancelling it ends the pool child,
        # whose replacement loads the models again. Our lease keeps the job exclusive, so a copy
        # Redis delivers again later finds it running or finished and is skipped.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility_timeout(settings),
            "unacked_restore_interval": settings.unacked_restore_interval_s,
            "unacked_restore_throttle": 1,
        },
        task_time_limit=settings.task_time_limit_s,
        task_soft_time_limit=max(1, settings.task_time_limit_s - 30),
        task_ignore_result=True,  # job state lives in SQL; Celery results would only duplicate it
        task_serializer="json",
        accept_content=["json"],
        task_queues=(Queue(GPU), Queue(CPU)),
        task_default_queue=CPU,
        task_routes={**{name: {"queue": GPU} for name in TASK_FOR_KIND.values()},
                     CLEANUP_TASK: {"queue": CPU}},
        worker_send_task_events=True,  # Flower
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
    )
    app.settings = settings  # read by the tasks and the sweeper, so a worker has one settings object
    app.steps["worker"].add(SweeperStep)
    app.steps["worker"].add(ReadinessStep)  # each pool process's warm start is in worker.tasks
    return app


app = make_celery(get_settings())
