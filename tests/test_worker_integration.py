"""The whole stack for real: the API (uvicorn), Celery workers (subprocesses), Redis, PostgreSQL,
SeaweedFS S3 and the engine with tiny random models.

Workers run with a short job lease (3 s), a fast sweep and a pause after each chunk, so that a
cancel or a SIGKILL lands mid-job and a lost job is back within seconds.
"""

from __future__ import annotations

import importlib.util
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import jobs_fixtures
import pytest
import soundfile as sf
from jobs_fixtures import audio_bytes, free_port, wait_until

from producer.client import ApiError, Client
from shared.db import Database
from shared.settings import Settings
from shared.storage import S3Storage
from shared.tables import Job, JobChunk, Voice

REPO = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("engine.facade") is None:
    pytest.skip("the engine's render module has not landed yet", allow_module_level=True)

LONG_ENTRY = "".join(f"第{i}句话讲今天的事情。" for i in range(16))


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> Path:
    return jobs_fixtures.tiny_models(tmp_path_factory)


@pytest.fixture(scope="module")
def jobs_database(services):
    """A database of this module's own, so no other test's rows reach these workers."""
    import sqlalchemy as sa

    name = f"echodiary_jobs_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(services.postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield services.postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class Stack:
    """The processes of one EchoDiary installation, started and stopped by pid."""

    def __init__(self, env: dict[str, str], settings: Settings, logs: Path) -> None:
        self.env, self.settings, self.logs = env, settings, logs
        self.workers: dict[str, subprocess.Popen] = {}
        self.others: list[subprocess.Popen] = []
        self.db = Database(settings.database_url)
        self.storage = S3Storage(settings.s3_endpoint_url, settings.s3_access_key, settings.s3_secret_key,
                                 settings.s3_bucket)
        from worker.app import make_celery

        self.celery = make_celery(settings)

    def spawn(self, *args: str, env: dict[str, str] | None = None, log: str = "proc") -> subprocess.Popen:
        out = (self.logs / f"{log}.log").open("ab")
        return subprocess.Popen([sys.executable, "-m", "producer.cli", *args], cwd=REPO, env=env or self.env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def cli(self, *args: str, env_extra: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "producer.cli", *args], cwd=REPO,
                              env={**self.env, **(env_extra or {})}, capture_output=True, text=True, timeout=timeout)

    def start_worker(self, name: str) -> None:
        proc = self.spawn("worker", "--name", f"{name}@%h", "--queues", "gpu,cpu", "--loglevel", "WARNING", log=name)
        self.workers[name] = proc

        def answers() -> bool:
            replies = self.celery.control.ping(timeout=0.5)
            return any(next(iter(r)).startswith(f"{name}@") for r in replies)

        wait_until(answers, 60, 0.2, f"worker {name}")

    def kill_worker(self, name: str) -> None:
        proc = self.workers.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)  # main process and its pool child, at once
        proc.wait(10)

    def stop(self) -> None:
        for proc in [*self.workers.values(), *self.others]:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)  # the main process shuts its children down itself
        for proc in [*self.workers.values(), *self.others]:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def job_row(self, job_id: str) -> Job:
        with self.db.read() as session:
            return session.get(Job, job_id)

    def objects(self, member_id: str) -> list[str]:
        return self.storage.list(f"members/{member_id}/")


@contextmanager
def running_stack(redis_url: str, database_url: str, s3, tiny_models: Path, tmp_path_factory,  # noqa: ANN001
                  workers: tuple[str, ...] = ("w1", "w2"), **overrides: str) -> Iterator[Stack]:
    """An API and ``workers`` (one process each) with this module's settings, changed by ``overrides``."""
    data = tmp_path_factory.mktemp("server-data")
    logs = tmp_path_factory.mktemp("logs")
    api_port = free_port()
    values = {
        "broker_url": redis_url, "database_url": database_url, "s3_endpoint_url": s3.endpoint_url,
        "s3_access_key": s3.access_key, "s3_secret_key": s3.secret_key, "s3_bucket": s3.bucket,
        "data_dir": str(data), "models_dir": str(tiny_models), "device": "cpu", "threads": "1",
        "api_url": f"http://127.0.0.1:{api_port}", "port": str(api_port),
        "job_lease_s": "3", "sweep_interval_s": "0.5", "visibility_timeout_s": "120", "redispatch_after_s": "2",
        "unacked_restore_interval_s": "1", "task_time_limit_s": "100", "worker_chunk_delay_s": "0.25",
        "interactive_max_chars": "40", "max_upload_bytes": "1000000", "max_text_chars": "2000",
        "allow_legacy_voices": "true",  # its voices are one-clip uploads, without consent
        "worker_warmup": "false",  # the first job loads the models; tests/test_lanes.py checks the warm start
        **overrides,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHODIARY_")}
    env.update({f"ECHODIARY_{k.upper()}": v for k, v in values.items()})
    env["OMP_NUM_THREADS"] = "1"
    settings = Settings(_env_file=None, **values)
    s = Stack(env, settings, logs)
    try:
        s.others.append(s.spawn("serve", log="api"))
        wait_until(lambda: _healthy(settings.api_url), 60, 0.2, "the API")
        for name in workers:
            s.start_worker(name)
        made = s.cli("members", "add", "admin", "--admin")
        assert made.returncode == 0, made.stderr
        s.admin = Client(settings.api_url, made.stdout.strip())
        yield s
    finally:
        s.stop()
        for log in sorted(logs.glob("*.log")):
            text = log.read_text(errors="replace")
            if "Traceback" in text:
                print(f"--- {log.name}\n{text[-4000:]}")


@pytest.fixture(scope="module")
def stack(redis_url, jobs_database, s3, tiny_models, tmp_path_factory):
    with running_stack(redis_url, jobs_database, s3, tiny_models, tmp_path_factory) as s:
        yield s


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _member(stack: Stack, name: str) -> Client:
    created = stack.admin.create_member(f"{name}-{uuid.uuid4().hex[:6]}")
    return Client(stack.settings.api_url, created.token)


@pytest.fixture(scope="module")
def ann(stack) -> tuple[Client, str]:
    """A member with an enrolled voice."""
    client = _member(stack, "ann")
    created = client.upload_voice(audio_bytes(4.0), "今天天气很好，我们去公园。", "zh", "ann")
    job = client.wait(created.job_id, timeout_s=120, poll_s=0.2)
    assert job.status == "succeeded", job.error
    assert client.voice(created.voice_id).status == "ready"
    return client, created.voice_id


def _wait_for_chunks(client: Client, job_id: str, n: int) -> None:
    def reached() -> bool:
        job = client.job(job_id)
        assert job.status in ("queued", "running"), f"job {job.status} before {n} chunks: {job.error}"
        return job.progress.done >= n

    try:
        wait_until(reached, 120, 0.1, f"{n} chunks of job {job_id}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the job now: {client.job(job_id)}") from None


def _member_id(client: Client) -> str:
    return client.me().member_id


# --- the happy path, and what other members can see ----------------------------------------------

def test_upload_enroll_synthesize_poll_download(stack, ann, tmp_path):
    client, voice_id = ann
    accepted = client.synthesize("今天天气很好。我们去公园散步吧。", voice_id, format="wav", seed=1)
    seen = []
    job = client.wait(accepted.job_id, on_update=lambda j: seen.append(j.progress.done), timeout_s=120, poll_s=0.1)
    assert job.status == "succeeded", job.error
    assert job.progress.total >= 1 and job.progress.done == job.progress.total
    assert seen == sorted(seen)  # progress only moves forward
    assert job.result is not None and job.result.url.startswith(stack.settings.s3_endpoint_url)
    path = client.download(job.job_id, tmp_path / "entry.wav")
    audio, rate = sf.read(path)
    assert rate == 32000 and abs(len(audio) / rate - job.result.duration_s) < 0.05
    row = stack.job_row(job.job_id)
    assert stack.objects(row.member_id).count(row.result_key) == 1
    with stack.db.read() as session:
        from sqlalchemy import func, select

        chunks = session.exec(select(func.count()).select_from(JobChunk).where(JobChunk.job_id == job.job_id)).one()[0]
    assert chunks == job.progress.total


def test_the_stored_audio_carries_the_jobs_watermark_and_label_for_its_owner_only(stack, ann, tmp_path):
    from engine.export import read_label

    client, voice_id = ann
    text = "".join(f"水印测试第{i}句，今天天气很好。" for i in range(6))
    job = client.wait(client.synthesize(text, voice_id, seed=2, format="flac").job_id, timeout_s=180)
    assert job.status == "succeeded", job.error
    data = client.download(job.job_id, tmp_path / "marked.flac").read_bytes()
    found = client.detect(data)
    assert found.present and found.mac_ok and found.mine
    assert (found.job_id, found.voice_id) == (job.job_id, voice_id)
    assert read_label(data).produce_id == job.job_id
    stranger = _member(stack, "eve").detect(data)
    assert stranger.present and not stranger.mine and stranger.job_id is None and stranger.voice_id is None


def test_a_second_member_cannot_see_use_or_delete_the_firsts_things(stack, ann):
    client, voice_id = ann
    job_id = client.synthesize("别人的日记。", voice_id).job_id
    client.wait(job_id, timeout_s=120)
    bob = _member(stack, "bob")
    for call in (lambda: bob.voice(voice_id), lambda: bob.job(job_id), lambda: bob.cancel(job_id),
                 lambda: bob.download(job_id), lambda: bob.request_delete_voice(voice_id),
                 lambda: bob.synthesize("借用一下。", voice_id), lambda: bob.finetune(voice_id)):
        with pytest.raises(ApiError) as refused:
            call()
        assert refused.value.status == 404
    assert bob.voices() == [] and bob.jobs().total == 0
    assert client.job(job_id).status == "succeeded" and client.voice(voice_id).status == "ready"


# --- cancelling, crashing, fairness --------------------------------------------------------------

def test_a_job_cancelled_mid_way_stops_between_chunks_and_leaves_no_result(stack, ann):
    client, voice_id = ann
    job_id = client.synthesize(LONG_ENTRY, voice_id).job_id
    _wait_for_chunks(client, job_id, 1)
    client.cancel(job_id)
    job = client.wait(job_id, timeout_s=60, poll_s=0.1)
    assert job.status == "cancelled" and job.result is None
    assert 1 <= job.progress.done < job.progress.total
    row = stack.job_row(job_id)
    assert not any(key.startswith(f"members/{row.member_id}/jobs/{job_id}/") for key in stack.objects(row.member_id))


def test_a_short_entry_of_one_member_finishes_before_anothers_long_backlog(stack, ann):
    client, voice_id = ann
    other = _member(stack, "cy")
    other_voice = other.upload_voice(audio_bytes(4.0, seed=3), "我是另一个人。", "zh", "cy")
    assert other.wait(other_voice.job_id, timeout_s=120).status == "succeeded"
    backlog = [client.synthesize(LONG_ENTRY[: 12 * 8] + str(i), voice_id).job_id for i in range(3)]
    short = other.synthesize("短短一句。", other_voice.voice_id).job_id
    assert other.wait(short, timeout_s=120).status == "succeeded"
    finished = [client.wait(j, timeout_s=180) for j in backlog]
    assert all(j.status == "succeeded" for j in finished)
    short_done = stack.job_row(short).finished_at
    first_long_done = min(stack.job_row(j).finished_at for j in backlog)
    assert short_done < first_long_done, "the short entry waited behind the other member's backlog"


def test_a_worker_killed_mid_job_leads_to_exactly_one_result(stack, ann):
    client, voice_id = ann
    job_id = client.synthesize(LONG_ENTRY, voice_id, seed=5).job_id
    _wait_for_chunks(client, job_id, 2)
    holder = stack.job_row(job_id).worker.split("@", 1)[0]
    killed_at = time.monotonic()
    stack.kill_worker(holder)
    job = client.wait(job_id, timeout_s=90, poll_s=0.2)
    recovered_in = time.monotonic() - killed_at
    stack.start_worker(holder)  # back to two workers for the tests that follow
    assert job.status == "succeeded", job.error
    row = stack.job_row(job_id)
    assert row.attempt == 2 and not row.worker.startswith(f"{holder}@")
    results = [k for k in stack.objects(row.member_id) if k.startswith(f"members/{row.member_id}/jobs/{job_id}/")]
    assert results == [row.result_key]
    assert recovered_in < 60


def test_a_pool_process_killed_mid_job_is_replaced_and_the_job_taken_over(stack, ann):
    client, voice_id = ann
    job_id = client.synthesize(LONG_ENTRY, voice_id, seed=6).job_id
    _wait_for_chunks(client, job_id, 2)
    holder, pid, _task = stack.job_row(job_id).worker.split(":")
    os.kill(int(pid), signal.SIGKILL)  # the worker's main process stays and requeues the message at once
    job = client.wait(job_id, timeout_s=90, poll_s=0.2)
    assert job.status == "succeeded", job.error
    row = stack.job_row(job_id)
    assert row.attempt == 2
    assert [k for k in stack.objects(row.member_id) if f"/jobs/{job_id}/" in k] == [row.result_key]
    assert all(proc.poll() is None for proc in stack.workers.values())


def _settle(client: Client) -> None:
    """Wait until the member has nothing queued or running (earlier tests' jobs)."""
    wait_until(lambda: not any(j.status in ("queued", "running") for j in client.jobs(limit=100).items),
               120, 0.3, "the member's earlier jobs")


def _claimed(stack: Stack, job_id: str, attempt: int) -> Job:
    def running() -> Job | None:
        row = stack.job_row(job_id)
        assert row.status in ("queued", "running"), f"job {row.status}: {row.error}"
        return row if row.status == "running" and row.attempt == attempt else None

    return wait_until(running, 60, 0.05, f"attempt {attempt} of job {job_id}")


def test_a_job_that_keeps_killing_its_worker_fails_after_three_attempts_and_frees_the_lane(stack, ann):
    client, voice_id = ann
    _settle(client)
    poison = client.synthesize(LONG_ENTRY, voice_id, seed=7).job_id
    behind = client.synthesize(LONG_ENTRY[:60], voice_id, seed=7).job_id  # the same lane: it waits its turn
    for attempt in (1, 2, 3):
        row = _claimed(stack, poison, attempt)
        killed_at = time.monotonic()
        os.kill(int(row.worker.split(":")[1]), signal.SIGKILL)  # the pool process, as the OOM killer would
        if attempt < 3:
            _claimed(stack, poison, attempt + 1)
            lease, sweep = stack.settings.job_lease_s, stack.settings.sweep_interval_s
            assert time.monotonic() - killed_at < lease + sweep + 3  # taken over as soon as the lease lapses
            assert client.job(behind).status == "queued"
    job = client.wait(poison, timeout_s=60, poll_s=0.2)
    assert job.status == "failed"
    assert job.error == ("the worker stopped 3 times while rendering this job; "
                         "it may need more memory than the worker has")
    row = stack.job_row(poison)
    assert row.attempt == 3
    chunks = f"members/{row.member_id}/jobs/{poison}/chunks/"
    wait_until(lambda: not stack.storage.list(chunks), 10, 0.2, "the failed job's chunks to be deleted")
    after = client.wait(behind, timeout_s=120, poll_s=0.2)
    assert after.status == "succeeded", after.error
    assert stack.job_row(behind).started_at >= stack.job_row(poison).finished_at
    assert all(proc.poll() is None for proc in stack.workers.values())


def test_a_dispatch_whose_message_was_lost_is_published_again_and_runs(stack, ann):
    from shared import service
    from shared.schemas import SynthesisRequest

    client, voice_id = ann
    _settle(client)
    token = client.http.headers["Authorization"].split()[1]
    nowhere = service.Backend(stack.settings, stack.db, stack.storage, lambda _dispatch: None)
    member = service.authenticate(nowhere, token)
    job, _ = service.create_synthesis(nowhere, member, SynthesisRequest(text="丢了的消息。", voice_id=voice_id))
    dispatched_at = stack.job_row(job.id).dispatched_at
    assert dispatched_at is not None  # marked as handed to the broker, but no message exists
    done = client.wait(job.id, timeout_s=60, poll_s=0.2)
    assert done.status == "succeeded", done.error
    row = stack.job_row(job.id)
    assert row.attempt == 1 and row.started_at - dispatched_at >= stack.settings.redispatch_after_s - 0.5


def test_a_cancelled_job_retried_from_the_cli_runs_again_as_a_new_attempt(stack, ann):
    client, voice_id = ann
    token = {"ECHODIARY_API_TOKEN": client.http.headers["Authorization"].split()[1]}
    job_id = client.synthesize(LONG_ENTRY[:80], voice_id, seed=8).job_id
    _wait_for_chunks(client, job_id, 1)
    client.cancel(job_id)
    assert client.wait(job_id, timeout_s=60, poll_s=0.1).status == "cancelled"
    retried = stack.cli("retry", job_id, env_extra=token)
    assert retried.returncode == 0 and retried.stdout.strip() == job_id, retried.stderr
    job = client.wait(job_id, timeout_s=120, poll_s=0.2)
    assert job.status == "succeeded", job.error
    row = stack.job_row(job_id)
    assert row.attempt >= 2  # a new attempt (more than one if a loaded machine let a 3 s lease lapse)
    assert [k for k in stack.objects(row.member_id) if f"/jobs/{job_id}/" in k] == [row.result_key]
    again = stack.cli("retry", job_id, env_extra=token)
    assert again.returncode == 1 and "only a failed or cancelled job can be retried" in again.stderr
    assert "Traceback" not in again.stderr


# --- idempotency and bad input through the real stack --------------------------------------------

def test_the_same_idempotency_key_gives_the_same_job(stack, ann):
    client, voice_id = ann
    first = client.synthesize("同一篇日记。", voice_id, idempotency_key="diary-2026-11-24")
    again = client.synthesize("同一篇日记。", voice_id, idempotency_key="diary-2026-11-24")
    assert first.job_id == again.job_id
    listed = [j.job_id for j in client.jobs(limit=100, kind="synthesis").items]
    assert listed.count(first.job_id) == 1
    with pytest.raises(ApiError) as clash:
        client.synthesize("另一篇日记。", voice_id, idempotency_key="diary-2026-11-24")
    assert clash.value.status == 409


def test_bad_input_gets_a_clear_4xx_and_leaves_nothing_behind(stack, ann):
    client, voice_id = ann
    member_id = _member_id(client)
    deadline = time.monotonic() + 120  # earlier tests' jobs must settle first: they still write and clean up
    while any(j.status in ("queued", "running") for j in client.jobs().items) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)
    before_jobs, before_objects, before_voices = client.jobs().total, stack.objects(member_id), len(client.voices())
    http = httpx.Client(base_url=stack.settings.api_url, headers=client.http.headers)
    cases = [
        (http.post("/v1/syntheses", json={"text": "", "voice_id": voice_id}), 422, "text"),
        (http.post("/v1/syntheses", json={"text": "好" * 2001, "voice_id": voice_id}), 422, "limit is 2000"),
        (http.post("/v1/syntheses", json={"text": "好", "voice_id": uuid.uuid4().hex}), 404, "not found"),
        (http.post("/v1/syntheses", json={"text": "好", "voice_id": voice_id, "speed": 2}), 422, "unknown field"),
        (http.post("/v1/voices", files={"audio": ("a.wav", b"MZ\x90\x00" * 400)},
                   data={"transcript": "x", "name": "x"}), 415, "not audio"),
        (http.post("/v1/voices", files={"audio": ("a.wav", audio_bytes(9.0, sample_rate=96000))},
                   data={"transcript": "x", "name": "x"}), 413, "limit"),
        (httpx.get(f"{stack.settings.api_url}/v1/jobs"), 401, "missing API token"),
        (httpx.get(f"{stack.settings.api_url}/v1/jobs", headers={"Authorization": "Bearer nope"}), 401, "invalid"),
    ]
    for response, status, words in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert words in response.json()["detail"]
    assert client.jobs().total == before_jobs and stack.objects(member_id) == before_objects
    assert len(client.voices()) == before_voices
    with stack.db.read() as session:
        from sqlalchemy import func, select

        assert session.exec(select(func.count()).select_from(Voice)
                            .where(Voice.member_id == member_id)).one()[0] == before_voices


# --- the command line in server mode, and Flower -------------------------------------------------

def test_the_cli_goes_through_the_api_and_workers(stack, ann, tmp_path):
    client, voice_id = ann
    token = client.http.headers["Authorization"].split()[1]
    out = tmp_path / "cli.flac"
    submitted = stack.cli("submit", "--text", "命令行写的日记。", "--voice", voice_id, "--format", "flac",
                          "-o", str(out), env_extra={"ECHODIARY_API_TOKEN": token})
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert client.job(job_id).status == "succeeded"  # the job is in the server's database: not embedded
    audio, rate = sf.read(io.BytesIO(out.read_bytes()))
    assert rate == 32000 and len(audio) > 0
    status = stack.cli("status", job_id, env_extra={"ECHODIARY_API_TOKEN": token})
    assert '"status": "succeeded"' in status.stdout


def test_flower_starts_behind_basic_auth_and_lists_the_workers(stack):
    port = free_port()
    env = {**stack.env, "ECHODIARY_FLOWER_BASIC_AUTH": "admin:s3cret", "ECHODIARY_FLOWER_PORT": str(port)}
    stack.others.append(stack.spawn("flower", env=env, log="flower"))
    url = f"http://127.0.0.1:{port}"

    def workers() -> dict:
        try:
            r = httpx.get(f"{url}/api/workers?refresh=1", auth=("admin", "s3cret"), timeout=5)
        except httpx.HTTPError:
            return {}
        return r.json() if r.status_code == 200 else {}

    listed = wait_until(lambda: (w := workers()) and len(w) >= 2 and w, 60, 0.5, "Flower's worker list")
    assert {name.split("@")[0] for name in listed} >= {"w1", "w2"}
    assert httpx.get(f"{url}/api/workers", timeout=5).status_code == 401
