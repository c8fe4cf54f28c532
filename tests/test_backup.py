"""Backup and restore round trips: embedded (SQLite + folder) through the CLI, and server mode
(PostgreSQL + S3) onto a fresh database and bucket; the restored installation has the same members,
tokens, voices, jobs, audio and watermark keyring."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from jobs_fixtures import audio_bytes, embedded_settings

from shared import job_state, keys, service
from shared.backup import BackupError, backup, public_settings, restore
from shared.backup import _tables as all_tables
from shared.schemas import SynthesisRequest
from shared.service import open_backend
from shared.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def populate(backend) -> dict:
    """A member with a ready voice and a finished synthesis, as a worker would leave them."""
    member, token = service.create_member(backend, "ann", admin=True)
    voice, enroll = service.create_voice(backend, member, audio_bytes(4.0), "今天天气很好。", "zh", "me")
    profile = secrets.token_bytes(3000)
    backend.storage.put(keys.profile_key(member.id, voice.id), profile)
    with backend.db.write() as session:
        attempt = job_state.claim(session, enroll.id, "test", 60)
        assert job_state.finish(session, enroll.id, attempt, progress_done=1, progress_total=1)
        assert service.voice_ready(session, voice.id, keys.profile_key(member.id, voice.id), len(profile))
    job, _ = service.create_synthesis(backend, member, SynthesisRequest(voice_id=voice.id, text="第一句。第二句。"))
    result = audio_bytes(2.0, "FLAC", seed=3)
    key = keys.result_key(member.id, job.id, "flac")
    backend.storage.put(key, result, "audio/flac")
    with backend.db.write() as session:
        attempt = job_state.claim(session, job.id, "test", 60)
        assert job_state.finish(session, job.id, attempt, result_key=key, result_bytes=len(result),
                               duration_s=2.0, expires_at=service.now() + 3600)
    return {"member": member, "token": token, "voice": voice, "job": job}


def keyring(data_dir: Path) -> bytes:
    from engine.watermark.keys import KEYRING_FILE, load_keyring

    load_keyring(data_dir)
    return (data_dir / KEYRING_FILE).read_bytes()


def snapshot(backend) -> tuple[dict, dict]:
    """Every row of every table, and every stored object, for comparing two installations."""
    from sqlalchemy import select

    rows = {}
    with backend.db.read() as session:
        for name, table in all_tables().items():
            rows[name] = sorted(json.dumps(dict(r), sort_keys=True) for r in session.execute(select(table)).mappings())
    objects = {key: backend.storage.get(key) for key in backend.storage.list("members/")}
    return rows, objects


def cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHODIARY_")}
    return subprocess.run([sys.executable, "-m", "producer.cli", *args], cwd=REPO, capture_output=True, text=True,
                          env={**env, "ECHODIARY_DATA_DIR": str(data_dir)}, timeout=120)


def test_embedded_round_trip_through_the_cli_onto_a_fresh_data_folder(tmp_path):
    source_dir, target_dir, folder = tmp_path / "old", tmp_path / "new", tmp_path / "backups" / "2026-12-02"
    source = open_backend(embedded_settings(source_dir))
    made = populate(source)
    ring = keyring(source_dir)

    done = cli("backup", str(folder), data_dir=source_dir)
    assert done.returncode == 0, done.stderr
    assert "3 objects" in done.stderr  # reference, profile, result
    restored = cli("restore", str(folder), data_dir=target_dir)
    assert restored.returncode == 0, restored.stderr

    target = open_backend(embedded_settings(target_dir))
    assert snapshot(target) == snapshot(source)
    assert (target_dir / "watermark" / "keys.json").read_bytes() == ring
    assert service.authenticate(target, made["token"]).id == made["member"].id  # the same token works
    job = service.get_job(target, made["member"], made["job"].id)
    assert job.status == "succeeded" and job.result is not None

    again = cli("restore", str(folder), data_dir=target_dir)  # never over an installation in use
    assert again.returncode == 1 and "already has members" in again.stderr
    assert "Traceback" not in again.stderr


def test_a_backup_never_writes_into_a_used_folder_and_restore_checks_what_it_reads(tmp_path):
    settings = embedded_settings(tmp_path / "data")
    populate(open_backend(settings))
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    with pytest.raises(BackupError, match="not empty"):
        backup(settings, tmp_path / "used")
    with pytest.raises(BackupError, match="not an EchoDiary backup"):
        restore(embedded_settings(tmp_path / "fresh"), tmp_path / "used")
    summary = backup(settings, tmp_path / "b")
    damaged = next((tmp_path / "b" / "objects").rglob("result.flac"))
    damaged.write_bytes(b"not the result")
    with pytest.raises(BackupError, match="checksum"):
        restore(embedded_settings(tmp_path / "fresh2"), summary.folder)


def test_settings_are_kept_without_secrets():
    settings = Settings(_env_file=None, s3_access_key="AKIA-visible", s3_secret_key="s3cr3t", api_token="edy_tok",
                        database_url="postgresql+psycopg://ann:hunter2@db/echodiary",
                        broker_url="redis://:redispw@broker:6379/0")
    text = json.dumps(public_settings(settings))
    for secret in ("AKIA-visible", "s3cr3t", "edy_tok", "hunter2", "redispw"):
        assert secret not in text
    assert "db/echodiary" in text and "broker:6379" in text


@pytest.fixture
def fresh_server(services, postgres_url, s3):
    """A second, empty PostgreSQL database and bucket on the same servers: the 'new machine'."""
    import boto3
    import sqlalchemy as sa
    from botocore.config import Config

    name = f"echodiary_restore_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(services.postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    bucket = f"echodiary-restore-{secrets.token_hex(5)}"
    client = boto3.client("s3", endpoint_url=s3.endpoint_url, aws_access_key_id=s3.access_key,
                          aws_secret_access_key=s3.secret_key, region_name="us-east-1",
                          config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    client.create_bucket(Bucket=bucket)
    yield services.postgres_url.rsplit("/", 1)[0] + f"/{name}", bucket
    for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        client.delete_object(Bucket=bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=bucket)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_server_mode_round_trip_onto_a_fresh_database_and_bucket(tmp_path, fresh_database, s3, fresh_server):
    def server(data_dir: Path, database_url: str, bucket: str) -> Settings:
        return Settings(_env_file=None, data_dir=data_dir, database_url=database_url, s3_endpoint_url=s3.endpoint_url,
                        s3_access_key=s3.access_key, s3_secret_key=s3.secret_key, s3_bucket=bucket,
                        allow_legacy_voices=True)  # populate() makes a one-clip voice

    source_settings = server(tmp_path / "old", fresh_database, s3.bucket)
    source = open_backend(source_settings)
    made = populate(source)
    ring = keyring(tmp_path / "old")
    summary = backup(source_settings, tmp_path / "backup")
    assert summary.objects == 3 and summary.rows["job"] == 2 and summary.missing == []
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert s3.secret_key not in json.dumps(manifest) and manifest["database"] == "postgresql"

    target_settings = server(tmp_path / "new", *fresh_server)
    restore(target_settings, tmp_path / "backup")
    target = open_backend(target_settings)
    assert snapshot(target) == snapshot(source)
    assert keyring(tmp_path / "new") == ring
    assert service.authenticate(target, made["token"]).id == made["member"].id
