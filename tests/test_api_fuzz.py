"""schemathesis over the whole OpenAPI schema, against the API in server mode with real services
(PostgreSQL, S3, Redis as the broker): no request may end in a server error or break the schema.

The number of requests and the status codes seen are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import collections

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi import checks

from producer.api import create_app
from shared import service
from shared.settings import Settings

COUNTS: collections.Counter = collections.Counter()
EXAMPLES = 20
# "Schema-valid data must be accepted" cannot hold where validity goes beyond what a schema can say
# (an upload must be real audio of 3-10 s, a voice id must exist): those answers are documented 4xx.
SEMANTIC = [checks.positive_data_acceptance]


class CountingApp:
    """Counts every response's status code at the ASGI boundary (what the client really got)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def counted(message) -> None:
            if message["type"] == "http.response.start":
                COUNTS[message["status"]] += 1
            await send(message)

        return await self.app(scope, receive, counted)


@pytest.fixture(scope="module")
def server_api(redis_url, postgres_url, s3, tmp_path_factory):
    settings_ = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("fuzz-data"), broker_url=redis_url,
                         database_url=postgres_url, s3_endpoint_url=s3.endpoint_url, s3_access_key=s3.access_key,
                         s3_secret_key=s3.secret_key, s3_bucket=s3.bucket, max_upload_bytes=200_000,
                         allow_legacy_voices=True)
    app = create_app(settings_)
    _, token = service.create_member(app.state.backend, "fuzz-admin", admin=True)
    return CountingApp(app), token


def fuzz_operation(operation, token: str) -> None:
    @given(case=operation.as_strategy())
    # derandomize: the same cases every run, so a CI result is reproducible (widen EXAMPLES locally to hunt)
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              derandomize=True)
    def run(case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, excluded_checks=SEMANTIC)

    run()


def test_no_request_breaks_the_api(server_api):
    """Every operation of the schema, fuzzed; then the tally: requests made, and no 5xx among them."""
    app, token = server_api
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 10
    for operation in operations:
        fuzz_operation(operation, token)
    total = sum(COUNTS.values())
    print(f"\nschemathesis: {len(operations)} operations, {total} requests; status codes: "
          f"{dict(sorted(COUNTS.items()))}")
    assert total >= len(operations) * 5
    assert not [code for code in COUNTS if code >= 500]
