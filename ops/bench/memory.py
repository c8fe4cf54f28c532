"""Peak memory of a render against the diary's length, on tiny random models (issue #15).

    python -m ops.bench.memory                      # 600 and 50,000 characters, CPU, 1 thread
    python -m ops.bench.memory --sizes 600 5000 --models DIR
    python -m ops.bench.memory --format mp3         # wav (default), flac, ogg or mp3
    python -m ops.bench.memory --format mp3 --c2pa  # with a C2PA manifest (spooled to a temporary file)

Each diary renders in its own subprocess through the worker's path: ``worker.pipeline.render_streaming``
(in ``--format``, watermark on, loudness on) into a local storage writer, committed as ``worker.runner._commit``
does. The parent reads each child's peak RSS (``ru_maxrss`` from ``wait4``), then checks the watermark
and the AIGC label of the stored result in another subprocess (detection is not part of a render).
Random weights never say EOS: the engine's token budget is patched in, as ops/bench/stream.py does,
but to ``TOKENS`` per chunk rather than the harness's 2.5 per phone (``ops.bench.render.budget``),
and chunks are cut every ~50 characters (``cut2``: 878 chunks at 50,000): with the harness's budget
50,000 characters are about three hours of audio and take over an hour on two busy cores. The text
is the reference diary (diary_zh.txt) repeated to the wanted length. One torch thread by default:
on a shared two-core machine two threads ran three times slower.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "bench"
MARK = 0x1234_5678_9ABC
FORMATS = ("wav", "flac", "ogg", "mp3")
TOKENS = 12  # semantic tokens per chunk (0.48 s): the harness's 2.5 per phone would take over an hour at 50k
BATCH = 32


def diary(chars: int) -> str:
    base = (REFERENCE / "diary_zh.txt").read_text().strip().replace("\n", "")
    return (base * (chars // len(base) + 1))[:chars]


def _settings(data: Path, models: Path, threads: int, c2pa: bool = False):  # noqa: ANN202 - shared.settings.Settings
    from shared.settings import Settings

    return Settings(data_dir=data, models_dir=models, device="cpu", threads=threads, watermark=True, c2pa=c2pa)


def _key(fmt: str) -> str:
    return f"bench/memory.{fmt}"


def child(chars: int, data: Path, models: Path, threads: int, fmt: str, c2pa: bool) -> None:
    """Render ``chars`` characters into ``data``'s storage; print a JSON line of figures."""
    from types import SimpleNamespace

    from engine.facade import Engine
    from ops.bench.render import synth_reference
    from shared.storage import CONTENT_TYPES, make_storage
    from worker import pipeline
    from worker.runner import _commit

    original = Engine.stream_pieces

    def budgeted(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        kwargs.setdefault("token_budget", lambda phones: TOKENS)
        return original(self, *args, **kwargs)

    Engine.stream_pieces = budgeted
    settings = _settings(data, models, threads, c2pa)
    engine = pipeline.get_engine(settings)
    profile = engine.enroll(synth_reference(), (REFERENCE / "prompt_text.txt").read_text().strip(), "zh")
    params = {"top_k": 15, "repetition_penalty": 1.35, "text_split_method": "cut2", "batch_size": BATCH, "seed": 1}
    storage = make_storage(settings)
    start = time.perf_counter()
    with storage.open_writer(_key(fmt), CONTENT_TYPES[fmt]) as out:
        stored = pipeline.render_streaming(settings, diary(chars), profile, params, fmt, MARK, "bench-memory",
                                           on_piece=lambda data, progress: out.write(data),
                                           on_progress=partial(_progress, time.perf_counter()),
                                           should_cancel=lambda: False,
                                           engine=engine)  # fmt: skip
        _commit(SimpleNamespace(storage=storage), out, _key(fmt), fmt, stored)
    print(json.dumps({"duration_s": stored.duration_s, "wall_s": time.perf_counter() - start}), flush=True)


def _progress(start: float, done: int, total: int) -> None:
    if done % 100 == 0 or done == total:
        print(f"    {done}/{total} chunks, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)


def check(data: Path, models: Path, fmt: str) -> None:
    """Print whether the stored result's watermark is found with our mark and its label verifies."""
    from shared.storage import make_storage
    from worker import pipeline

    settings = _settings(data, models, 1)
    stored = make_storage(settings).get(_key(fmt))
    found = pipeline.detect(settings, stored)
    label = pipeline.read_label(settings, stored)
    print(json.dumps({"mark_ok": bool(found.present and found.mac_ok and found.mark == MARK),
                      "label_ok": bool(label is not None and label.verified), "bytes": len(stored)}), flush=True)


def _run(args: list[str]) -> tuple[dict, int]:
    """A subprocess's JSON line and its peak RSS in KiB."""
    proc = subprocess.Popen([sys.executable, "-m", "ops.bench.memory", *args], stdout=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert proc.stdout is not None
    output = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"ops.bench.memory {' '.join(args)} failed with exit code {proc.returncode}")
    return json.loads(output.strip().splitlines()[-1]), usage.ru_maxrss


def tiny_models(folder: Path) -> Path:
    from engine.model_files import init_random

    if not (folder / ".complete").exists():
        init_random(folder, "tiny")
        (folder / ".complete").touch()
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[600, 50_000])
    parser.add_argument("--models", type=Path, default=Path(tempfile.gettempdir()) / "echodiary-bench-tiny-models")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--format", choices=FORMATS, default="wav", help="the stored file's format")
    parser.add_argument("--c2pa", action="store_true", help="sign the stored file with a C2PA manifest")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.child, args.data, args.models, args.threads, args.format, args.c2pa)
    if args.check:
        return check(args.data, args.models, args.format)
    models = tiny_models(args.models)
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min), "
          f"{os.cpu_count()} CPUs; tiny random models, {args.threads} threads, {args.format.upper()}, watermark on"
          f"{', C2PA on' if args.c2pa else ''}",
          flush=True)
    peaks: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="echodiary-bench-memory-") as tmp:
        for chars in args.sizes:
            data = Path(tmp) / str(chars)
            figures, peak = _run(["--child", str(chars), "--data", str(data), "--models", str(models),
                                  "--threads", str(args.threads), "--format", args.format,
                                  *(["--c2pa"] if args.c2pa else [])])  # fmt: skip
            peaks[chars] = peak
            verdict, _ = _run(["--check", "--data", str(data), "--models", str(models), "--format", args.format])
            print(f"  {chars:>6} characters: peak RSS {peak / 1024:8.1f} MiB, audio {figures['duration_s']:8.1f} s, "
                  f"wall {figures['wall_s']:7.1f} s, file {verdict['bytes'] / 2**20:7.1f} MiB, "
                  f"watermark {'verifies' if verdict['mark_ok'] else 'NOT FOUND'}, "
                  f"label {'verifies' if verdict['label_ok'] else 'DOES NOT VERIFY'}", flush=True)
    small, large = min(peaks), max(peaks)
    if small != large:
        print(f"  peak RSS ratio {large}/{small} characters: {peaks[large] / peaks[small]:.2f} (goal: at most 1.5)")
    print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min)", flush=True)


if __name__ == "__main__":
    main()
