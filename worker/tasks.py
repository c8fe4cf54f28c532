"""Celery tasks. Their only argument is a job id: diary text never enters the broker or Flower."""

from __future__ import annotations

import logging
import os

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init

from shared import job_state, service
from shared.service import Backend
from worker import readiness
from worker.app import app
from worker.messages import CLEANUP_TASK, TASK_FOR_KIND, publisher
from worker.outage import gave_up_message, retry_delay
from worker.runner import TransientError, run_job, worker_name

log = logging.getLogger(__name__)
_backend: Backend | None = None


def backend() -> Backend:
    """This process's backend (database, storage, publisher), opened on first use after the fork."""
    global _backend
    if _backend is None:
        _backend = service.open_backend(app.settings, publisher(app))
    return _backend


@worker_process_init.connect
def _warm_start(**_: object) -> None:
    """Each new pool process warms up and reports its readiness (:mod:`worker.readiness`)."""
    if app.settings.broker_url:
        readiness.start(app.settings, readiness.process_name(), backend)


def _run(task: Task, job_id: str) -> str:
    try:
        # "<worker name>:<pid>:<task id>": who holds the job, down to the pool process.
        return run_job(backend(), job_id, f"{task.request.hostname or worker_name()}:{os.getpid()}:{task.request.id}")
    except TransientError as exc:
        retries = task.request.retries
        delay = retry_delay(app.settings, retries)
        if delay is None:
            log.error("job %s: giving up after %d retries: %s", job_id, retries, exc)
            with backend().db.write() as session:
                job_state.fail_queued(session, job_id, gave_up_message(app.settings, exc))
            raise
        raise task.retry(countdown=delay, exc=exc) from exc
    except SoftTimeLimitExceeded:
        log.error("job %s ran past the time limit", job_id)
        raise


@app.task(name=TASK_FOR_KIND["enroll"], bind=True, max_retries=None)
def enroll(self: Task, job_id: str) -> str:
    return _run(self, job_id)


@app.task(name=TASK_FOR_KIND["synthesis"], bind=True, max_retries=None)
def synthesize(self: Task, job_id: str) -> str:
    return _run(self, job_id)


@app.task(name=TASK_FOR_KIND["finetune"], bind=True, max_retries=None)
def finetune(self: Task, job_id: str) -> str:
    return _run(self, job_id)


@app.task(name=CLEANUP_TASK)
def cleanup() -> int:
    """Delete results past their TTL (light work: the cpu queue)."""
    return service.cleanup_expired(backend())
