"""What travels through the broker: the task names, their queues, and the publisher that sends them.

Below the Celery app, its tasks and the sweeper, which all need these, so none of them has to
import another to publish a job.
"""

from __future__ import annotations

from celery import Celery

from shared import job_state
from shared.settings import Settings
from shared.tables import ENROLL, FINETUNE, SYNTHESIS

TASK_FOR_KIND = {ENROLL: "echodiary.enroll", SYNTHESIS: "echodiary.synthesize", FINETUNE: "echodiary.finetune"}
CLEANUP_TASK = "echodiary.cleanup"
GPU, CPU = "gpu", "cpu"


def visibility_timeout(settings: Settings) -> int:
    return settings.visibility_timeout_s or settings.task_time_limit_s + 600


def publisher(celery_app: Celery) -> job_state.Publish:
    """Publish dispatches as Celery messages carrying the job id alone."""

    def publish(dispatch: job_state.Dispatch) -> None:
        celery_app.send_task(TASK_FOR_KIND[dispatch.kind], args=[dispatch.job_id], queue=dispatch.queue,
                             priority=dispatch.priority)

    return publish
