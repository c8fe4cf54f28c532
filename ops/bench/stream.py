"""Time to first audio byte, in process and through the job system, on full-size random v2 weights.

    python -m ops.bench.stream                        # CPU, 2 threads, models in data/bench-models-v2
    python -m ops.bench.stream --models DIR --device cuda --runs 5

Figures (the standard work of ../shared/reference/bench/: the 62-character entry, a saved voice):
* in process: ``Engine.stream_pieces`` to its first audio piece, early start and exact; and to the
  first encoded byte of the export chain (``PieceExporter``: what a listener receives), on the lead
  a worker gives each (interactive syntheses start early on a 0.5 s lead, ``worker.pipeline.Opening``;
  exact ones take the 1 s lead);
* ``POST /v1/audio/speech`` (wav, streamed) and ``GET /v1/jobs/{id}/audio`` after
  ``POST /v1/syntheses``: request sent to first body byte, through a real API, Redis and one Celery
  worker, early start (the default for interactive syntheses) and exact (a worker with
  ``ECHODIARY_INTERACTIVE_EARLY_START=false``); the difference to in process is what the job system costs;
* playback stalls over the whole diary (diary_zh.txt) streamed through ``/v1/jobs/{id}/audio``:
  seconds a player that starts at the first byte would wait for later ones.

Random weights never say EOS: the worker runs with the harness's token budget (ops.bench.render's
``budget``) patched into its engine, as the in-process figures do; nothing else differs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "bench"
SR = 32000
BYTES_PER_S = SR * 2  # 16-bit mono WAV


def in_process(models: Path, device: str, threads: int, runs: int) -> dict[str, float]:
    from engine.exporting import LEAD_S, MIN_LOUDNESS_S, PieceExporter
    from engine.facade import Engine
    from engine.params import RenderParams
    from ops.bench.render import budget, synth_reference

    engine = Engine.load(models, device=device, threads=threads)
    profile = engine.enroll(synth_reference(), (REFERENCE / "prompt_text.txt").read_text().strip(), "zh")
    text = (REFERENCE / "stream_zh.txt").read_text().strip()
    params = RenderParams(top_k=15, repetition_penalty=1.35, text_split_method="cut5", batch_size=8, seed=1)
    figures: dict[str, float] = {}
    for early in (True, False):
        piece_s, byte_s = [], []
        for seed in range(runs + 1):  # the first run warms the kernels
            exporter = PieceExporter(SR, "wav", loudness_lufs=-20.0, lead_s=MIN_LOUDNESS_S if early else LEAD_S)
            start = time.perf_counter()
            pieces = engine.stream_pieces(text, profile, params, seed=seed, token_budget=budget, early_start=early)
            first_piece = None
            for piece in pieces:
                first_piece = first_piece or time.perf_counter() - start
                if exporter.push(piece.audio):
                    byte_s.append(time.perf_counter() - start)
                    break
            piece_s.append(first_piece)
            pieces.close()
        mode = "early start" if early else "exact"
        figures[f"in process, first piece ({mode})"] = statistics.median(piece_s[1:])
        figures[f"in process, first encoded byte ({mode})"] = statistics.median(byte_s[1:])
        for name in list(figures)[-2:]:
            print(f"  {name:<66} {figures[name]:7.2f} s", flush=True)
    return figures


def worker_main() -> None:
    """A Celery worker whose engine stops each segment after the harness's token budget."""
    from engine.facade import Engine
    from ops.bench.render import budget

    original = Engine.stream_pieces

    def budgeted(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        kwargs.setdefault("token_budget", budget)
        return original(self, *args, **kwargs)

    Engine.stream_pieces = budgeted
    from producer.cli import app

    sys.argv = ["echodiary", *sys.argv[1:]]
    app()


def start_worker(bench, name: str, settings: dict[str, str] | None = None):  # noqa: ANN001, ANN201 - Bench, Popen
    """One Celery worker process (concurrency 1) with the harness's token budget (:func:`worker_main`);
    ``settings`` (ECHODIARY_* variables) on top of the bench's."""
    import subprocess

    log = (bench.tmp / "worker.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from ops.bench.stream import worker_main; worker_main()", "worker", "--queues",
         "gpu,cpu", "--concurrency", "1", "--loglevel", "WARNING", "--name", f"{name}@%h"],
        cwd=Path(__file__).resolve().parents[2], env={**bench.env, **(settings or {})}, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True)
    bench.procs.append(proc)
    return proc


def stop_worker(proc) -> None:  # noqa: ANN001 - subprocess.Popen
    import signal

    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=120)


def through_api(args: argparse.Namespace) -> dict[str, float]:
    import httpx

    from ops.bench.api import Bench, wait_for
    from ops.bench.render import synth_reference

    bench = Bench(argparse.Namespace(models=args.models, port=args.port, device=args.device))
    figures: dict[str, float] = {}
    try:
        # The bench voice is a one-clip upload of a synthetic signal: it has no consent recording.
        bench.setup({"ECHODIARY_THREADS": str(args.threads), "ECHODIARY_INTERACTIVE_MAX_CHARS": "100",
                     "ECHODIARY_ALLOW_LEGACY_VOICES": "true"})
        worker = start_worker(bench, "stream-early")
        prompt = (REFERENCE / "prompt_text.txt").read_text().strip()
        voice = bench.post("/v1/voices", files={"audio": ("ref.wav", synth_reference())},
                           data={"transcript": prompt, "language": "zh", "name": "bench"})
        wait_for(lambda: bench.job(voice["job_id"])["status"] == "succeeded", 900, "the enrollment")
        text = (REFERENCE / "stream_zh.txt").read_text().strip()
        body = {"text": text, "voice_id": voice["voice_id"], "format": "wav", "top_k": 15, "seed": 1}
        speech = {"model": "gpt-sovits", "voice": "bench", "input": text, "response_format": "wav"}
        for mode in ("early start", "exact"):
            if mode == "exact":
                stop_worker(worker)
                worker = start_worker(bench, "stream-exact", {"ECHODIARY_INTERACTIVE_EARLY_START": "false"})
                warm = bench.post("/v1/syntheses", json=body)["job_id"]  # waits for the new worker to start
                wait_for(lambda job=warm: bench.job(job)["status"] == "succeeded", 900, "the new worker")
            speech_s, jobs_s = _first_bytes(bench, body, speech, args.runs)
            figures[f"POST /v1/audio/speech, first byte ({mode})"] = speech_s
            figures[f"POST /v1/syntheses + GET /v1/jobs/{{id}}/audio, first byte ({mode})"] = jobs_s
            for name in list(figures)[-2:]:
                print(f"  {name:<66} {figures[name]:7.2f} s", flush=True)
        diary = (REFERENCE / "diary_zh.txt").read_text().strip()
        job_id = bench.post("/v1/syntheses", json={**body, "text": diary})["job_id"]
        figures["diary: playback stalls (s)"], figures["diary: audio (s)"] = _stalls(bench.http, job_id)
    except httpx.HTTPError as exc:
        print(f"through the API: {exc}", flush=True)
    finally:
        bench.teardown()
    return figures


def _first_bytes(bench, body: dict, speech: dict, runs: int) -> tuple[float, float]:  # noqa: ANN001 - Bench
    """Median seconds to the first byte of ``/v1/audio/speech`` and of a synthesis' audio stream."""
    jobs_s, speech_s = [], []
    for run in range(runs + 1):  # the first run warms the worker's kernels (and waits for its start)
        start = time.perf_counter()
        job_id = bench.post("/v1/syntheses", json={**body, "seed": run})["job_id"]
        jobs_s.append(_first_byte(bench.http, f"/v1/jobs/{job_id}/audio", start))
        start = time.perf_counter()
        with bench.http.stream("POST", "/v1/audio/speech", json=speech) as response:
            received = response.iter_raw()  # one iterator: a second iter_raw() raises StreamConsumed
            next(received)
            speech_s.append(time.perf_counter() - start)
            for _ in received:
                pass
    return statistics.median(speech_s[1:]), statistics.median(jobs_s[1:])


def _first_byte(http, path: str, start: float) -> float:  # noqa: ANN001 - httpx.Client
    with http.stream("GET", path) as response:
        received = response.iter_raw()
        next(received)
        elapsed = time.perf_counter() - start
        for _ in received:
            pass
    return elapsed


def _stalls(http, job_id: str) -> tuple[float, float]:  # noqa: ANN001
    """A player starting at the first byte plays 64,000 bytes a second; what it waits for later ones."""
    clock = stalled = None
    received = 0
    with http.stream("GET", f"/v1/jobs/{job_id}/audio", timeout=None) as response:
        for data in response.iter_raw():
            now = time.perf_counter()
            if clock is None:
                clock, stalled = now, 0.0
            stalled += max(0.0, now - clock)
            clock = max(clock, now) + len(data) / BYTES_PER_S
            received += len(data)
    return stalled or 0.0, received / BYTES_PER_S


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, default=Path("data/bench-models-v2"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port", type=int, default=8931)
    parser.add_argument("--skip-api", action="store_true", help="only the in-process figures")
    args = parser.parse_args()
    if not (args.models.exists() and any(args.models.iterdir())):
        from engine.model_files import init_random

        print(f"writing full-size random v2 models to {args.models} (once) ...", flush=True)
        init_random(args.models, size="full", version="v2", seed=0)
    args.models = args.models.resolve()
    load = os.getloadavg()
    figures = in_process(args.models, args.device, args.threads, args.runs)
    if not args.skip_api:
        figures.update(through_api(args))
    print(f"\nfirst audio, 62-character entry, saved voice, {args.device}, {args.threads} threads "
          f"(load average at start {load[0]:.1f}, at end {os.getloadavg()[0]:.1f}):")
    for name, value in figures.items():
        print(f"  {name:<66} {value:7.2f}{'' if '(s)' in name else ' s'}")


if __name__ == "__main__":
    main()
