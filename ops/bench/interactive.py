"""First audio of a short interactive request while a 3,000-character diary renders on the same
single worker, against the same request on the idle worker (issue #14: within 1.5 s of idle on CPU).

    python -m ops.bench.interactive                         # tiny random models, CPU, 2 threads
    python -m ops.bench.interactive --models DIR --runs 3   # e.g. full-size random v2 weights

The real stack (API, Redis, PostgreSQL, S3 and one Celery worker, prefork, concurrency 1, with the
warm start on), as ``ops.bench.stream`` runs it: the 62-character entry (an interactive job) through
``POST /v1/syntheses`` + ``GET /v1/jobs/{id}/audio`` (wav), request sent to first body byte, exact
mode (``ops.bench.stream`` measures ``/v1/audio/speech`` beside it: the same job path). While the
diary renders, each request is sent once the diary has finished another chunk since the previous
one, so every request meets a diary in the middle of its render; the diary pauses at its next
pause point (between decoding steps, ``worker/lanes.py``) and runs the request inline. Random
weights never say EOS: the worker's engine runs with the harness's token budget, as in
``ops.bench.stream``. Also printed: the diary's attempts (1: it only paused, it never stopped) and
how many of the requests ran while it was paused.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from ops.bench.stream import REFERENCE, start_worker

DIARY_CHARS = 3000


def first_byte(http, body: dict) -> float:  # noqa: ANN001 - httpx.Client
    """Seconds from sending the synthesis to the first audio byte of its stream (the rest is read)."""
    start = time.perf_counter()
    accepted = http.post("/v1/syntheses", json=body)
    accepted.raise_for_status()
    first = None
    with http.stream("GET", f"/v1/jobs/{accepted.json()['job_id']}/audio", timeout=None) as response:
        response.raise_for_status()
        for _ in response.iter_raw():  # one iterator: a second one would find the stream consumed
            first = first or time.perf_counter() - start
    return first


def diary_text() -> str:
    diary = (REFERENCE / "diary_zh.txt").read_text().strip()
    return (diary * (DIARY_CHARS // len(diary) + 1))[:DIARY_CHARS]


def measure(args: argparse.Namespace) -> dict[str, float]:
    from sqlalchemy import func
    from sqlmodel import select

    from ops.bench.api import Bench, wait_for
    from ops.bench.render import synth_reference
    from shared.db import Database
    from shared.tables import Job

    bench = Bench(argparse.Namespace(models=args.models, port=args.port, device=args.device))
    figures: dict[str, float] = {}
    try:
        bench.setup({"ECHODIARY_THREADS": str(args.threads), "ECHODIARY_INTERACTIVE_MAX_CHARS": "100",
                     "ECHODIARY_ALLOW_LEGACY_VOICES": "true", "ECHODIARY_WORKER_WARMUP": "true",
                     "ECHODIARY_TASK_TIME_LIMIT_S": "10800"})
        started = time.perf_counter()
        start_worker(bench, "interactive")
        wait_for(lambda: any(w["state"] == "ready" for w in bench.http.get("/healthz").json()["workers"] or []),
                 900, "the worker's warm-up")
        figures["worker start to ready (warm-up included) (s)"] = time.perf_counter() - started
        prompt = (REFERENCE / "prompt_text.txt").read_text().strip()
        voice = bench.post("/v1/voices", files={"audio": ("ref.wav", synth_reference())},
                           data={"transcript": prompt, "language": "zh", "name": "bench"})
        wait_for(lambda: bench.job(voice["job_id"])["status"] == "succeeded", 900, "the enrollment")
        short = {"text": (REFERENCE / "stream_zh.txt").read_text().strip(), "voice_id": voice["voice_id"],
                 "format": "wav", "top_k": 15, "seed": 1}
        idle = [first_byte(bench.http, short) for _ in range(args.runs + 1)]
        figures["idle worker: first byte, first request after start"] = idle[0]
        figures["idle worker: first byte (median)"] = statistics.median(idle[1:])

        diary = bench.post("/v1/syntheses", json={"text": diary_text(), "voice_id": voice["voice_id"],
                                                  "format": "wav", "top_k": 15, "seed": 1})["job_id"]
        busy: list[float] = []
        done = 0
        for _ in range(args.runs):
            wait_for(lambda after=done: _rendering(bench.job(diary), after + 1), 900, "the diary rendering")
            done = bench.job(diary)["progress"]["done"]
            busy.append(first_byte(bench.http, short))
        figures["while the diary renders: first byte (median)"] = statistics.median(busy)
        figures["while the diary renders: first byte (worst)"] = max(busy)
        figures["difference to idle (median)"] = figures["while the diary renders: first byte (median)"] - \
            figures["idle worker: first byte (median)"]
        if args.finish_diary:
            wait_for(lambda: bench.job(diary)["status"] == "succeeded", 10800, "the diary")
        db = Database(bench.env["ECHODIARY_DATABASE_URL"])
        with db.read() as session:
            row = session.get(Job, diary)
            figures["diary: attempts (n)"] = row.attempt
            inline = session.exec(select(func.count()).select_from(Job).where(
                Job.lane == "interactive", Job.kind == "synthesis", Job.started_at > row.started_at,
                Job.finished_at < (row.finished_at or time.time()))).one()
            figures["requests that ran while the diary was running (n)"] = inline
        db.dispose()
        if not args.finish_diary:
            bench.http.post(f"/v1/jobs/{diary}/cancel")
    finally:
        bench.teardown()
    return figures


def _rendering(job: dict, chunks: int) -> bool:
    """Running, with at least ``chunks`` done (so the model is mid-render, not just loading the job)."""
    return job["status"] == "running" and job["progress"]["done"] >= chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, default=None, help="models folder (default: tiny random ones)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port", type=int, default=8932)
    parser.add_argument("--finish-diary", action="store_true", help="wait for the diary to finish (else cancel it)")
    args = parser.parse_args()
    args.models = args.models.resolve() if args.models else None
    load = os.getloadavg()
    figures = measure(args)
    print(f"\ninteractive request (62 characters) vs a {DIARY_CHARS}-character diary on one worker, "
          f"{args.models or 'tiny random models'}, {args.device}, {args.threads} threads "
          f"(load average at start {load[0]:.1f}, at end {os.getloadavg()[0]:.1f}):")
    for name, value in figures.items():
        unit = "" if name.endswith(("(n)", "(s)")) else " s"
        print(f"  {name:<66} {value:7.2f}{unit}")


if __name__ == "__main__":
    main()
