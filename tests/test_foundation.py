"""The foundation: settings defaults, the CLI entry point, and round trips with each real service."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import boto3
import redis
import sqlalchemy as sa
from botocore.config import Config

from shared.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def test_settings_default_to_embedded_mode(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .env here
    settings = Settings()
    assert settings.embedded
    assert settings.models_dir == Path("./models")
    assert settings.data_dir == Path("./data")
    assert settings.sqlalchemy_url.startswith("sqlite:///")
    assert settings.sqlalchemy_url.endswith("data/echodiary.sqlite3")


def test_settings_read_echodiary_variables_and_dotenv(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("ECHODIARY_S3_BUCKET=from-dotenv\nECHODIARY_MODELS_DIR=/srv/models\n")
    monkeypatch.setenv("ECHODIARY_BROKER_URL", "redis://127.0.0.1:6379/0")
    settings = Settings()
    assert not settings.embedded
    assert settings.s3_bucket == "from-dotenv"
    assert settings.models_dir == Path("/srv/models")


def test_cli_entry_point_answers_help():
    out = subprocess.run([sys.executable, "-m", "producer.cli", "--help"], capture_output=True, text=True,
                         cwd=REPO, check=False)
    assert out.returncode == 0, out.stderr
    assert "echodiary" in out.stdout.lower()


def test_redis_round_trip(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.set("echodiary:probe", b"\x00voice")
    assert client.get("echodiary:probe") == b"\x00voice"
    assert client.delete("echodiary:probe") == 1


def test_postgres_round_trip(postgres_url):
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE probe (id serial primary key, note text)"))
        conn.execute(sa.text("INSERT INTO probe (note) VALUES ('hello')"))
        assert conn.execute(sa.text("SELECT note FROM probe")).scalar_one() == "hello"
        assert conn.execute(sa.text("SELECT current_database()")).scalar_one().startswith("echodiary_test_")
    engine.dispose()


def test_s3_round_trip_with_presigned_url_and_signature_check(s3):
    import httpx

    client = boto3.client("s3", endpoint_url=s3.endpoint_url, aws_access_key_id=s3.access_key,
                          aws_secret_access_key=s3.secret_key, region_name="us-east-1",
                          config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    client.put_object(Bucket=s3.bucket, Key="probe/a.bin", Body=b"diary")
    assert client.get_object(Bucket=s3.bucket, Key="probe/a.bin")["Body"].read() == b"diary"
    url = client.generate_presigned_url("get_object", Params={"Bucket": s3.bucket, "Key": "probe/a.bin"},
                                        ExpiresIn=60)
    assert httpx.get(url).content == b"diary"
    # A real server checks signatures: a tampered one is refused.
    assert httpx.get(url[:-4] + ("0000" if not url.endswith("0000") else "1111")).status_code == 403
    client.delete_object(Bucket=s3.bucket, Key="probe/a.bin")
