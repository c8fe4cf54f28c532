"""Outages are waited out: a job that meets unreachable storage is held and retried, not failed.

Real PostgreSQL and S3 (SeaweedFS), tiny models; the storage's boto3 client is wrapped so that its
first calls raise exactly what botocore raises when the server cannot be reached.
"""

from __future__ import annotations

import jobs_fixtures
import pytest
from botocore.exceptions import EndpointConnectionError
from jobs_fixtures import audio_bytes, wait_until

from shared import service
from shared.settings import Settings
from shared.tables import Job
from worker.outage import OUTAGE_RETRY_MAX_S, retry_delay


class UnreachableAtFirst:
    """A boto3 client whose first ``failures`` calls fail as if the S3 server were down."""

    def __init__(self, client, failures: int) -> None:  # noqa: ANN001 - a boto3 S3 client
        self.client, self.failures, self.refused = client, failures, 0

    def __getattr__(self, name: str):  # noqa: ANN204
        method = getattr(self.client, name)
        if name == "generate_presigned_url" or not callable(method):
            return method

        def call(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            if self.refused < self.failures:
                self.refused += 1
                raise EndpointConnectionError(endpoint_url=self.client.meta.endpoint_url)
            return method(*args, **kwargs)

        return call


def test_retries_wait_out_the_whole_window_with_capped_backoff():
    settings = Settings(_env_file=None, outage_window_s=900)
    delays = []
    while (delay := retry_delay(settings, len(delays))) is not None:
        delays.append(delay)
    assert sum(delays) == pytest.approx(900)
    assert delays[:4] == [1, 2, 4, 8] and max(delays) == OUTAGE_RETRY_MAX_S
    assert retry_delay(Settings(_env_file=None, outage_window_s=0), 0) is None


def test_a_job_that_meets_a_storage_outage_succeeds_once_storage_is_back(fresh_database, s3, tmp_path,
                                                                         tmp_path_factory):
    from worker.inline import InlineExecutor

    settings = Settings(_env_file=None, data_dir=tmp_path, models_dir=jobs_fixtures.tiny_models(tmp_path_factory),
                        device="cpu", threads=1, database_url=fresh_database, s3_endpoint_url=s3.endpoint_url,
                        s3_access_key=s3.access_key, s3_secret_key=s3.secret_key, s3_bucket=s3.bucket,
                        outage_window_s=60, sweep_interval_s=0.5,
                        allow_legacy_voices=True)  # a one-clip voice (no consent) keeps the test short
    executor = InlineExecutor(settings)
    backend = executor.backend
    member, _ = service.create_member(backend, "ann")
    voice, job = service.create_voice(backend, member, audio_bytes(4.0), "今天天气很好。", "zh", "ann")
    outage = backend.storage.client = UnreachableAtFirst(backend.storage.client, failures=3)
    executor.start()
    try:
        done = wait_until(lambda: (j := service.get_job(backend, member, job.id)).status not in ("queued", "running")
                          and j, 120, 0.2, "the enrollment")
    finally:
        executor.stop()
    assert outage.refused == 3  # the job did meet the outage, three tries in a row
    assert done.status == "succeeded", done.error
    assert service.get_voice(backend, member, voice.id).status == "ready"
    with backend.db.read() as session:
        row = session.get(Job, job.id)
    assert (row.attempt, row.stopped_attempts) == (4, 0)  # given back three times, never counted as a crash
