"""Upstream GPT-SoVITS and EchoDiary side by side, on the same work, the same weights, in one run.

    python -m ops.bench.versus --upstream DIR --upstream-python PY     # 2 rounds, CPU, 2 threads
    python -m ops.bench.versus ... --rounds 3 --parts t2s sovits e2e

Upstream runs unmodified through the harness of ``../shared/tools/upstream/model`` (its README says
how to prepare its checkout and a Python with upstream's requirements); nothing of upstream is
imported into this process or copied into the project. End to end, both sides load the same
full-size random v2 files (written once with ``engine.model_files.init_random``; upstream reads them
through links with the names its harness expects); the micro-benchmarks use seeded random weights of
the same shapes on each side (values do not change speed). The work is the standard work of
``../shared/reference/bench/`` with the same token budget. Every part runs in fresh processes, upstream and ours alternating (the order flips
each round), so a change in the machine's load hits both sides alike; the ratios of each round are
printed, then the best of each side over all rounds.

Parts: ``t2s`` (decode tokens/s at batch 1, 4, 8), ``sovits`` (RTF for 150 and 600 tokens), ``e2e``
(the 598-character diary at batch 8: wall, T2S, SoVITS, BERT; and first audio of the 62-character
entry: upstream's streaming mode from the bare reference, ours from the bare reference and from a
saved voice, early start). Ratios are upstream / ours for times and ours / upstream for rates: above 1
is ours faster.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from contracts import MATMUL_SETTINGS

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO.parent / "shared" / "tools" / "upstream" / "model"
UPSTREAM_COMMIT = "48b1a0169a28582a8984402f82cf438d3bfa6aca"
DEFAULT_MODELS = Path("/tmp/echodiary-bench-models-full-v2")
# the names upstream's harness loads from its --models folder -> our official layout
UPSTREAM_NAMES = {
    "s1_full_v2.ckpt": "gsv-v2final-pretrained/s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt",
    "s2G_full_v2.pth": "gsv-v2final-pretrained/s2G2333k.pth",
    "chinese-roberta-wwm-ext-large-rand": "chinese-roberta-wwm-ext-large",
    "chinese-hubert-base-rand": "chinese-hubert-base",
}
PARTS = ("t2s", "sovits", "e2e")


@dataclass
class Row:
    """One figure of both sides; ``higher_is_better`` for rates (tokens/s), not for times."""

    name: str
    upstream: float | None
    ours: float | None
    higher_is_better: bool = False

    @property
    def ratio(self) -> float | None:
        if not self.upstream or not self.ours:
            return None
        return self.ours / self.upstream if self.higher_is_better else self.upstream / self.ours


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    have = set(flags.split(":", 1)[1].split())
    return " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in have) or "no AVX2"


def ensure_models(models: Path) -> Path:
    """Our full-size random v2 files, and a folder of links naming them as upstream's harness does."""
    from engine.model_files import detect_version, init_random

    if detect_version(models) is None:
        print(f"writing full-size random v2 models to {models} (once) ...", flush=True)
        init_random(models, size="full", version="v2", seed=0)
    links = models / "upstream-names"
    links.mkdir(exist_ok=True)
    for name, ours in UPSTREAM_NAMES.items():
        link = links / name
        if not link.exists():
            link.symlink_to(models / ours)
    return links


def run_upstream(python: str, checkout: Path, links: Path, threads: int, args: list[str]) -> list[dict]:
    """The harness's JSON lines for ``args`` (one fresh process)."""
    env = {**os.environ, "UPSTREAM_GSV_DIR": str(checkout), "UPSTREAM_GSV_COMMIT": UPSTREAM_COMMIT,
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [python, str(HARNESS / "bench_upstream.py"), "--models", str(links), "--threads", str(threads), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"upstream's harness failed ({' '.join(args)}):\n{done.stderr[-3000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def run_ours(module: str, args: list[str]) -> dict:
    """The figures ``python -m ops.bench.<module>`` writes with ``--json`` (one fresh process)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.json"
        cmd = [sys.executable, "-m", f"ops.bench.{module}", *args, "--json", str(out)]
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(f"ops.bench.{module} failed:\n{done.stderr[-3000:]}")
        return json.loads(out.read_text())


def by_bench(records: list[dict]) -> dict[str, dict]:
    return {r["bench"]: r for r in records if "bench" in r}


def t2s_rows(up: dict[str, dict], ours: dict) -> list[Row]:
    rows = [Row("T2S batch 1 tokens/s", up["t2s_naive_b1"]["tokens_per_s"]["max"],
                ours["batch 1"]["tokens_per_s"], True),
            Row("T2S batch 1 ms/step", up["t2s_naive_b1"]["decode_step_ms_median"]["min"], ours["batch 1"]["step_ms"])]
    for batch in (4, 8):
        rows.append(Row(f"T2S batch {batch} tokens/s", up[f"t2s_batch_b{batch}"]["tokens_per_s"]["max"],
                        ours[f"batch {batch}"]["tokens_per_s"], True))
    return rows


def sovits_rows(up: dict[str, dict], ours: dict) -> list[Row]:
    return [Row(f"SoVITS RTF {n} tokens", up[f"sovits_decode_{n}"]["rtf"]["min"], ours[f"{n} single"]["rtf"])
            for n in (150, 600)]


def e2e_rows(up: dict[str, dict], ours: dict) -> list[Row]:
    diary, best = up["e2e_batch8"], ours["diary batch 8"]["best"]
    return [
        Row("diary 598c batch 8 wall s", diary["wall_s"], best["wall_s"]),
        Row("diary 598c batch 8 RTF", diary["rtf"], best["rtf"]),
        Row("diary T2S tokens/s", diary["t2s_tokens_per_s"], best["t2s_tok_s"], True),
        Row("diary SoVITS s", diary["sovits_s"], best["sovits_s"]),
        Row("diary BERT s", diary["bert_s"], best["bert_s"]),
        Row("entry 62c first audio, bare reference s", up["e2e_stream"]["first_audio_s"],
            ours["first_audio_cold_early_s"]),
        Row("entry 62c first audio, saved voice s", None, ours["entry 62c early start"]["best"]["first_audio_s"]),
        Row("entry 62c first audio, saved voice, exact s", None, ours["entry 62c"]["best"]["first_audio_s"]),
    ]


def upstream_part(part: str, python: str, checkout: Path, links: Path, threads: int) -> dict[str, dict]:
    if part == "t2s":
        return by_bench(run_upstream(python, checkout, links, threads, ["--repeats", "3", "t2s_naive", "t2s_batch"]))
    if part == "sovits":
        return by_bench(run_upstream(python, checkout, links, threads, ["--repeats", "3", "sovits"]))
    records = run_upstream(python, checkout, links, threads, ["--repeats", "1", "e2e", "--mode", "batch8"])
    records += run_upstream(python, checkout, links, threads, ["--repeats", "3", "e2e", "--mode", "stream"])
    best: dict[str, dict] = {}
    for r in records:  # the fastest run of each mode
        if "bench" in r and (r["bench"] not in best or r.get("wall_s", 0) < best[r["bench"]].get("wall_s", 0)):
            best[r["bench"]] = r
    return best


def our_part(part: str, models: Path, threads: int, matmul: str) -> dict:
    common = ["--threads", str(threads)]
    if part == "t2s":
        return run_ours("t2s", [*common, "--repeats", "3", "--matmul", matmul])
    if part == "sovits":
        return run_ours("sovits", [*common, "--repeats", "3", "--chunks"])
    return run_ours("render", [*common, "--models", str(models), "--repeats", "1", "--batches", "8", "--skip-3000",
                               "--matmul", matmul])  # fmt: skip


ROWS = {"t2s": t2s_rows, "sovits": sovits_rows, "e2e": e2e_rows}


def print_rows(title: str, rows: list[Row]) -> None:
    print(f"\n{title}\n{'figure':<44} {'upstream':>10} {'ours':>10} {'ratio':>7}")
    for row in rows:
        up = f"{row.upstream:.3f}" if row.upstream is not None else "-"
        ours = f"{row.ours:.3f}" if row.ours is not None else "-"
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
        print(f"{row.name:<44} {up:>10} {ours:>10} {ratio:>7}", flush=True)


def best_of(rounds: list[list[Row]]) -> list[Row]:
    """Per figure, each side's best over the rounds (its fastest run on this machine)."""
    merged = []
    for rows in zip(*rounds, strict=True):
        pick = max if rows[0].higher_is_better else min
        ups = [r.upstream for r in rows if r.upstream is not None]
        ours = [r.ours for r in rows if r.ours is not None]
        merged.append(Row(rows[0].name, pick(ups) if ups else None, pick(ours) if ours else None,
                          rows[0].higher_is_better))
    return merged


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", type=Path, required=True,
                        help=f"a scratch checkout of upstream GPT-SoVITS at {UPSTREAM_COMMIT[:8]} (its harness "
                             "rewrites a config file in it and restores it)")
    parser.add_argument("--upstream-python", default=sys.executable,
                        help="a Python with upstream's requirements (../shared/tools/upstream/model/README.md)")
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--matmul", default="auto", choices=MATMUL_SETTINGS,
                        help="our GPT and BERT CPU kernels (engine.kernels); exact: upstream's float32 numbers")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    args = parser.parse_args(argv)
    if not (HARNESS / "bench_upstream.py").exists():
        raise SystemExit(f"upstream's harness is not at {HARNESS}")
    if not (args.upstream / "GPT_SoVITS").is_dir():
        raise SystemExit(f"{args.upstream} is not a checkout of upstream GPT-SoVITS (no GPT_SoVITS folder)")
    links = ensure_models(args.models)
    print(f"CPU {cpu_model()} ({os.cpu_count()} logical, {cpu_flags()}); {args.threads} threads; "
          f"load average at start {os.getloadavg()[0]:.1f}", flush=True)
    results: dict[str, list[list[Row]]] = {part: [] for part in args.parts}
    for round_no in range(args.rounds):
        for part in args.parts:
            started, load = time.perf_counter(), os.getloadavg()[0]
            sides = [("upstream", lambda p=part: upstream_part(p, args.upstream_python, args.upstream, links,
                                                               args.threads)),
                     ("ours", lambda p=part: our_part(p, args.models, args.threads, args.matmul))]
            figures = {}
            for name, measure in sides if round_no % 2 == 0 else reversed(sides):
                figures[name] = measure()
            rows = ROWS[part](figures["upstream"], figures["ours"])
            results[part].append(rows)
            print_rows(f"round {round_no + 1}, {part} ({time.perf_counter() - started:.0f} s, load average "
                       f"{load:.1f} -> {os.getloadavg()[0]:.1f})", rows)
    for part, rounds in results.items():
        print_rows(f"best of {len(rounds)} rounds, {part}", best_of(rounds))


if __name__ == "__main__":
    main()
