"""One whole EchoDiary installation of the chaos suite's own: its services (ops.chaos.services), the
API (``echodiary serve``) and workers (``echodiary worker``) as subprocesses, tiny models, and the
household members whose jobs the scenarios submit.

Every process is started in a session of its own and stopped by its pid (or process group, which
also reaches a pool child orphaned by a killed worker). :meth:`ChaosStack.close` stops all of it and
is safe to call more than once.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from ops.chaos.services import S3_ACCESS_KEY, S3_SECRET_KEY, Postgres, Redis, SeaweedFS, free_ports
from producer.client import Client
from shared.db import Database
from shared.settings import Settings
from shared.storage import S3Storage
from shared.tables import Job

REPO = Path(__file__).resolve().parents[2]
BUCKET = "echodiary-chaos"
POISON_MARKER = "CHAOS-POISON"
VOICE_TEXT = "今天天气很好，我们去公园。"


@dataclass
class Member:
    name: str
    client: Client
    member_id: str
    voice_id: str


def make_tiny_models(folder: Path) -> Path:
    """Tiny random models (as the tests make them), written once and reused while ``.complete`` is there."""
    if not (folder / ".complete").exists():
        made = subprocess.run([sys.executable, "-m", "producer.cli", "models", "init", "--random", str(folder),
                               "--size", "tiny"], cwd=REPO, capture_output=True, text=True, timeout=600)
        if made.returncode != 0:
            raise RuntimeError(f"could not make tiny models in {folder}: {made.stderr.strip()[-500:]}")
        (folder / ".complete").touch()
    return folder


class ChaosStack:
    def __init__(self, root: Path, models: Path, workers: int = 2) -> None:
        self.root, self.models, self.worker_count = root, models, workers
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        for folder in (root, self.logs):
            folder.chmod(0o755)  # PostgreSQL runs as its own user (when we are root) and must reach its folder
        redis_port, pg_port, s3_port, api_port = free_ports(4)
        self.redis = Redis(self.logs / "redis", redis_port)
        self.postgres = Postgres(self.logs / "postgres", pg_port)
        self.s3 = SeaweedFS(self.logs / "seaweedfs", s3_port)
        self.settings = self._settings(api_port)
        self.env = self._env()
        self.api: subprocess.Popen | None = None
        self.workers: dict[str, subprocess.Popen] = {}
        self.dead_groups: list[int] = []  # process groups of killed workers (a pool child may outlive them)
        self.members: list[Member] = []
        self._serial = 0
        self.db: Database | None = None
        self.storage: S3Storage | None = None

    def _settings(self, api_port: int) -> Settings:
        return Settings(
            _env_file=None, broker_url=self.redis.url, database_url=self.postgres.url,
            s3_endpoint_url=self.s3.endpoint_url, s3_access_key=S3_ACCESS_KEY, s3_secret_key=S3_SECRET_KEY,
            s3_bucket=BUCKET, data_dir=self.root / "data", models_dir=self.models, device="cpu", threads=1,
            api_url=f"http://127.0.0.1:{api_port}", port=api_port, allow_legacy_voices=True,
            # A few chunks per job that take a while each, so that a fault lands while jobs are running.
            worker_chunk_delay_s=0.3, task_time_limit_s=900, chaos_poison_marker=POISON_MARKER,
        )

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECHODIARY_")}
        for key, value in self.settings.model_dump(exclude_none=True).items():
            if key in ("broker_url", "database_url", "s3_endpoint_url", "s3_access_key", "s3_secret_key", "s3_bucket",
                       "data_dir", "models_dir", "device", "threads", "api_url", "port", "allow_legacy_voices",
                       "worker_chunk_delay_s", "task_time_limit_s", "chaos_poison_marker"):
                env[f"ECHODIARY_{key.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
        env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        return env

    # --- starting ----------------------------------------------------------------------------

    def start(self, members: int) -> None:
        self.redis.start()
        self.postgres.start()
        self.s3.start()
        self.storage = S3Storage(self.settings.s3_endpoint_url, S3_ACCESS_KEY, S3_SECRET_KEY, BUCKET)
        self.storage.ensure_bucket()
        self.db = Database(self.settings.database_url)
        self.api = self._spawn("serve", log="api")
        self._wait(self._api_up, 90, "the API")
        for _ in range(self.worker_count):
            self.start_worker()
        admin = self._admin()
        self.members = [self._member(admin, f"member{i + 1}") for i in range(members)]

    def _spawn(self, *args: str, log: str) -> subprocess.Popen:
        with (self.logs / f"{log}.log").open("ab") as out:
            return subprocess.Popen([sys.executable, "-m", "producer.cli", *args], cwd=REPO, env=self.env,
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)

    def start_worker(self) -> str:
        self._serial += 1
        name = f"chaos-w{self._serial}"
        self.workers[name] = self._spawn("worker", "--name", f"{name}@%h", "--loglevel", "WARNING", log=name)
        return name

    def _api_up(self) -> bool:
        try:
            return httpx.get(f"{self.settings.api_url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _admin(self) -> Client:
        made = subprocess.run([sys.executable, "-m", "producer.cli", "members", "add", "chaos-admin", "--admin"],
                              cwd=REPO, env=self.env, capture_output=True, text=True, timeout=120)
        if made.returncode != 0:
            raise RuntimeError(f"could not create the admin member: {made.stderr.strip()[-500:]}")
        return Client(self.settings.api_url, made.stdout.strip())

    def _member(self, admin: Client, name: str) -> Member:
        from ops.chaos.audio import voice_clip

        created = admin.create_member(f"{name}-{uuid.uuid4().hex[:6]}")
        client = Client(self.settings.api_url, created.token, timeout=60)
        voice = client.upload_voice(voice_clip(seed=len(self.members)), VOICE_TEXT, "zh", name)
        job = client.wait(voice.job_id, timeout_s=300, poll_s=0.3)
        if job.status != "succeeded":
            raise RuntimeError(f"the enrollment of {name}'s voice ended {job.status}: {job.error}")
        return Member(name, client, client.me().member_id, voice.voice_id)

    @staticmethod
    def _wait(condition, seconds: float, what: str) -> None:  # noqa: ANN001 - a callable returning bool
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come up within {seconds:.0f} s")
            time.sleep(0.2)

    # --- looking ------------------------------------------------------------------------------

    def jobs(self, job_ids: list[str]) -> dict[str, Job]:
        from sqlmodel import select

        with self.db.read() as session:
            return {row.id: row for row in session.exec(select(Job).where(Job.id.in_(job_ids))).all()}

    def job_objects(self, member_id: str, job_id: str) -> list[str]:
        return self.storage.list(f"members/{member_id}/jobs/{job_id}/")

    # --- faults -------------------------------------------------------------------------------

    def kill_worker_main(self, name: str) -> None:
        """SIGKILL a worker's main process alone; its pool child is left to itself, as after an OOM kill."""
        proc = self.workers.pop(name)
        proc.kill()
        proc.wait(10)
        self.dead_groups.append(proc.pid)

    def worker_of(self, holder: str) -> str | None:
        """The name of our worker whose node name starts ``holder`` (``chaos-wN@host:pid:task``)."""
        name = holder.split("@", 1)[0]
        return name if name in self.workers else None

    # --- stopping -----------------------------------------------------------------------------

    def close(self) -> None:
        procs = [p for p in [*self.workers.values(), self.api] if p is not None]
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        for pgid in [p.pid for p in procs] + self.dead_groups:
            try:
                os.killpg(pgid, signal.SIGKILL)  # what is left: a pool child that outlived its parent
            except (ProcessLookupError, PermissionError):
                pass
        self.workers.clear()
        if self.db is not None:
            self.db.dispose()
        for service in (self.s3, self.postgres, self.redis):
            service.stop()

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
