"""The job system under load, against the real stack: Redis, PostgreSQL, S3 (SeaweedFS), the API
served by uvicorn and one Celery worker with tiny random models.

    python -m ops.bench.api                       # starts what is missing, prints the figures
    python -m ops.bench.api --enqueue 500 --jobs 40 --poll-seconds 10 --models /path/to/tiny

Figures:
* enqueue latency: POST /v1/syntheses one after another from one client (keep-alive), p50 / p99;
  each request authenticates, checks quotas, inserts the job and runs the member's dispatch;
* status polls: GET /v1/jobs/{id} from several client threads for a while, requests per second;
* jobs per minute through one worker (prefork, concurrency 1): short entries, one voice, from the
  first job's start to the last one's end (the engine's one-time load is reported apart).

Everything it makes (database, bucket, processes) is its own and removed at the end.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def wait_for(condition, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.procs: list[subprocess.Popen] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="echodiary-bench-"))

    def setup(self, settings: dict[str, str] | None = None) -> None:
        """Start the API on fresh services; ``settings`` (ECHODIARY_* variables) apply to it and to
        every process spawned afterwards."""
        import boto3
        import sqlalchemy as sa
        from botocore.config import Config

        from ops import dev_services

        services = dev_services.ensure_all()
        self.db_name = f"echodiary_bench_{uuid.uuid4().hex[:8]}"
        self.pg_admin = sa.create_engine(services.postgres_url, isolation_level="AUTOCOMMIT")
        with self.pg_admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self.db_name}"'))
        self.bucket = f"echodiary-bench-{secrets.token_hex(4)}"
        self.s3 = boto3.client("s3", endpoint_url=services.s3_endpoint_url, aws_access_key_id=services.s3_access_key,
                               aws_secret_access_key=services.s3_secret_key, region_name="us-east-1",
                               config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
        self.s3.create_bucket(Bucket=self.bucket)
        models = self.args.models
        if models is None:
            models = self.tmp / "models"
            self.cli_run("models", "init", "--random", str(models), "--size", "tiny", env=os.environ)
        port = self.args.port
        self.api = f"http://127.0.0.1:{port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ECHODIARY_")}
        self.env.update({
            "ECHODIARY_BROKER_URL": f"{services.redis_url}/{self.free_redis_db(services.redis_url)}",
            "ECHODIARY_DATABASE_URL": services.postgres_url.rsplit("/", 1)[0] + f"/{self.db_name}",
            "ECHODIARY_S3_ENDPOINT_URL": services.s3_endpoint_url, "ECHODIARY_S3_BUCKET": self.bucket,
            "ECHODIARY_S3_ACCESS_KEY": services.s3_access_key, "ECHODIARY_S3_SECRET_KEY": services.s3_secret_key,
            "ECHODIARY_DATA_DIR": str(self.tmp / "data"), "ECHODIARY_MODELS_DIR": str(models),
            "ECHODIARY_API_URL": self.api, "ECHODIARY_DEVICE": self.args.device,
            "ECHODIARY_QUOTA_QUEUED_JOBS": "1000000", "ECHODIARY_QUOTA_CHARS_PER_DAY": "1000000000",
            "ECHODIARY_MEMBER_CONCURRENCY": "1000000",  # measure the pipe, not the fairness rule
            "HF_HUB_OFFLINE": "1",
        })
        self.env.update(settings or {})
        self.procs.append(self.spawn("serve", "--port", str(port)))
        wait_for(lambda: httpx.get(f"{self.api}/healthz").status_code == 200, 60, "the API")
        token = self.cli_run("members", "add", "bench", "--admin").strip()
        self.http = httpx.Client(base_url=self.api, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def free_redis_db(self, url: str) -> int:
        """An empty Redis database, claimed with a marker key so a test session does not take it too."""
        import redis

        for db in range(15, 0, -1):
            probe = redis.Redis.from_url(f"{url}/{db}")
            if probe.dbsize() == 0 and probe.set("echodiary:test-session", f"bench-{os.getpid()}", nx=True, ex=3600):
                self.redis_db_url = f"{url}/{db}"
                return db
        raise SystemExit("no free Redis database")

    def spawn(self, *args: str) -> subprocess.Popen:
        log = (self.tmp / f"{args[0]}.log").open("ab")
        return subprocess.Popen([sys.executable, "-m", "producer.cli", *args], cwd=REPO, env=self.env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def cli_run(self, *args: str, env: dict | None = None) -> str:
        done = subprocess.run([sys.executable, "-m", "producer.cli", *args], cwd=REPO, env=env or self.env,
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise SystemExit(f"echodiary {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def post(self, path: str, **kwargs) -> dict:  # noqa: ANN003
        r = self.http.post(path, **kwargs)
        if r.status_code >= 400:
            raise SystemExit(f"POST {path}: {r.status_code} {r.text}")
        return r.json()

    def job(self, job_id: str) -> dict:
        return self.http.get(f"/v1/jobs/{job_id}").json()

    def run(self) -> None:
        import numpy as np
        import soundfile as sf

        from shared.db import Database
        from shared.tables import Job

        args = self.args
        # A voice to synthesise with: upload now, enrolled by the worker started below.
        t = np.arange(4 * 32000) / 32000
        wav = tempfile.SpooledTemporaryFile()
        sf.write(wav, (0.2 * np.sin(2 * np.pi * 150 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype("float32"),
                 32000, format="WAV")
        wav.seek(0)
        voice = self.post("/v1/voices", files={"audio": ("ref.wav", wav.read())},
                          data={"transcript": "今天天气很好。", "language": "zh", "name": "bench"})

        t_start = time.perf_counter()
        worker = self.spawn("worker", "--queues", "gpu,cpu", "--loglevel", "WARNING", "--name", "bench@%h")
        self.procs.append(worker)
        wait_for(lambda: self.job(voice["job_id"])["status"] == "succeeded", 300, "the enrollment")
        engine_ready_s = time.perf_counter() - t_start
        # 1. Enqueue latency, with the worker held still so that only the API is timed (the jobs
        # are cancelled afterwards).
        os.kill(worker.pid, signal.SIGSTOP)
        latencies = []
        enqueued = []
        for i in range(args.enqueue):
            t0 = time.perf_counter()
            r = self.http.post("/v1/syntheses", json={"text": f"第{i}篇日记。今天很好。", "voice_id": voice["voice_id"]})
            latencies.append(time.perf_counter() - t0)
            enqueued.append(r.json()["job_id"])
        # 2. Status polls from several threads.
        stop = time.perf_counter() + args.poll_seconds
        counts = [0] * args.poll_threads

        def poll(slot: int) -> None:
            client = httpx.Client(base_url=self.api, headers=self.http.headers, timeout=30)
            ids = enqueued[slot::args.poll_threads] or enqueued
            n = 0
            while time.perf_counter() < stop:
                assert client.get(f"/v1/jobs/{ids[n % len(ids)]}").status_code == 200
                n += 1
            counts[slot] = n

        threads = [threading.Thread(target=poll, args=(i,)) for i in range(args.poll_threads)]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        polls_per_s = sum(counts) / (time.perf_counter() - t0)
        for job_id in enqueued:
            self.http.post(f"/v1/jobs/{job_id}/cancel")
        os.kill(worker.pid, signal.SIGCONT)

        # 3. Jobs per minute through the one worker.
        wait_for(lambda: self.http.get("/v1/jobs?status=queued&limit=1").json()["total"] == 0, 120, "an idle queue")
        ids = [self.post("/v1/syntheses", json={"text": f"第{i}篇。今天天气很好，我们去公园散步。", "voice_id": voice["voice_id"],
                                                "seed": i})["job_id"] for i in range(args.jobs)]
        wait_for(lambda: all(self.job(j)["status"] in ("succeeded", "failed") for j in ids), 1800, "the jobs")
        db = Database(self.env["ECHODIARY_DATABASE_URL"])
        with db.read() as session:
            rows = [session.get(Job, j) for j in ids]
        failed = [r for r in rows if r.status != "succeeded"]
        span = max(r.finished_at for r in rows) - min(r.started_at for r in rows)
        turnaround = [r.finished_at - r.created_at for r in rows]
        audio_s = sum(r.duration_s or 0 for r in rows)
        db.dispose()

        ms = [x * 1000 for x in latencies]
        print(f"enqueue latency     p50 {percentile(ms, 50):6.1f} ms   p99 {percentile(ms, 99):6.1f} ms   "
              f"({len(ms)} POST /v1/syntheses, one client)")
        print(f"status polls        {polls_per_s:6.0f} req/s   ({args.poll_threads} client threads, {args.poll_seconds:.0f} s, "
              "one uvicorn process)")
        print(f"one worker          {60 * len(rows) / span:6.1f} jobs/min   ({len(rows)} short entries in {span:.1f} s, "
              f"{audio_s:.1f} s of audio, turnaround p50 {statistics.median(turnaround):.1f} s, "
              f"{len(failed)} failed)")
        print(f"engine first load   {engine_ready_s:6.1f} s      (worker start + model load + enrollment)")

    def teardown(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if hasattr(self, "redis_db_url"):
            import redis

            redis.Redis.from_url(self.redis_db_url).flushdb()
        if hasattr(self, "s3"):
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
                for obj in page.get("Contents", []):
                    self.s3.delete_object(Bucket=self.bucket, Key=obj["Key"])
            self.s3.delete_bucket(Bucket=self.bucket)
        if hasattr(self, "pg_admin"):
            import sqlalchemy as sa

            with self.pg_admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--enqueue", type=int, default=300, help="POSTs for the enqueue latency")
    parser.add_argument("--poll-seconds", type=float, default=5.0)
    parser.add_argument("--poll-threads", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=30, help="jobs through the worker")
    parser.add_argument("--models", type=Path, default=None, help="a models folder (default: tiny random ones)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--port", type=int, default=18765)
    bench = Bench(parser.parse_args())
    try:
        bench.setup()
        bench.run()
    finally:
        bench.teardown()


if __name__ == "__main__":
    main()
