"""The embedded client: a thin client over the service layer and the embedded executor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from jobs_fixtures import embedded_settings

from producer.client import ApiError, EmbeddedClient

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def client(tmp_data_dir):
    with EmbeddedClient(embedded_settings(tmp_data_dir)) as embedded:
        yield embedded


def test_service_errors_reach_the_caller_with_the_apis_status_and_message(client):
    with pytest.raises(ApiError) as missing:
        client.voice("0" * 32)
    assert missing.value.status == 404 and "not found" in missing.value.detail
    client.create_member("bob")
    with pytest.raises(ApiError) as taken:
        client.create_member("bob")
    assert taken.value.status == 409 and "already exists" in taken.value.detail
    with pytest.raises(ApiError) as junk:
        client.detect(b"not audio at all" * 100)
    assert junk.value.status == 415 and "not audio we can read" in junk.value.detail
    with pytest.raises(ApiError) as short:
        client.upload_voice(b"RIFF", "今天。", "zh", "me")
    assert short.value.status in (413, 415, 422)


def test_reading_starts_no_executor_and_imports_no_web_framework(tmp_data_dir):
    script = ("import sys; from producer.client import EmbeddedClient; from shared.settings import Settings; "
              f"c = EmbeddedClient(Settings(_env_file=None, data_dir={str(tmp_data_dir)!r})); "
              "c.jobs(); c.voices(); c.me(); "
              "print(c.executor.running, 'fastapi' in sys.modules, 'engine' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "False"]
