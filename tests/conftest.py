"""Shared fixtures: real Redis, PostgreSQL and S3 (SeaweedFS), never mocks.

The services are started by ``ops.dev_services`` when they are not already running. Each test
session gets a Redis database number of its own, a fresh PostgreSQL database and a fresh bucket,
all removed at the end.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Nothing in the tests may reach a model hub, and no developer's own settings may leak in.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# ECHODIARY_SCREENSHOTS only says where the browser tests save their pictures.
for _name in [n for n in os.environ if n.startswith("ECHODIARY_") and not n.startswith("ECHODIARY_DEV_")
              and n != "ECHODIARY_SCREENSHOTS"]:
    del os.environ[_name]

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference" / "gpt-sovits"
FIXTURES = REFERENCE / "fixtures"


@dataclass(frozen=True)
class S3Target:
    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str


@pytest.fixture(scope="session")
def services():  # noqa: ANN201 - ops.dev_services.Services
    from ops import dev_services

    return dev_services.ensure_all()


@pytest.fixture(scope="session")
def redis_url(services) -> Iterator[str]:
    """A Redis database number of this session's own, empty at start and flushed at the end."""
    import redis

    client = redis.Redis.from_url(services.redis_url)
    db = None
    for candidate in range(15, 0, -1):
        # Claim a db with a marker key so parallel sessions do not share one.
        probe = redis.Redis.from_url(f"{services.redis_url}/{candidate}")
        if probe.dbsize() == 0 and probe.set("echodiary:test-session", os.getpid(), nx=True, ex=3600):
            db = candidate
            break
    client.close()
    if db is None:
        pytest.fail("no free Redis database number (1-15) for this test session")
    url = f"{services.redis_url}/{db}"
    yield url
    redis.Redis.from_url(url).flushdb()


@pytest.fixture(scope="session")
def postgres_url(services) -> Iterator[str]:
    """A fresh PostgreSQL database for this session, dropped at the end."""
    yield from _own_database(services.postgres_url, "echodiary_test_")


def _own_database(server_url: str, prefix: str) -> Iterator[str]:
    """Create a uniquely named database on the server, yield its URL, drop it afterwards."""
    import sqlalchemy as sa

    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield server_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def s3(services) -> Iterator[S3Target]:
    """A fresh bucket on the session's S3 server, emptied and removed at the end."""
    import boto3
    from botocore.config import Config

    bucket = f"echodiary-test-{secrets.token_hex(6)}"
    client = boto3.client(
        "s3",
        endpoint_url=services.s3_endpoint_url,
        aws_access_key_id=services.s3_access_key,
        aws_secret_access_key=services.s3_secret_key,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    client.create_bucket(Bucket=bucket)
    yield S3Target(services.s3_endpoint_url, services.s3_access_key, services.s3_secret_key, bucket)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=bucket)


@pytest.fixture
def tmp_data_dir(tmp_path: Path) -> Path:
    """An empty data folder, as a fresh embedded install would have."""
    data = tmp_path / "data"
    data.mkdir()
    return data


@pytest.fixture
def fresh_database(services) -> Iterator[str]:
    """A database of this test's own, for a test that must see no other test's rows."""
    yield from _own_database(services.postgres_url, "echodiary_own_")
