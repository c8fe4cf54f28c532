"""End-to-end rendering speed on the standard work of ../shared/reference/bench/ (full-size random v2).

    python -m ops.bench.render                      # CPU, 2 threads, float32 (upstream's setting)
    python -m ops.bench.render --device cuda --precision fp16

Work, as upstream's harness measured it (research/upstream_baseline_cpu.md): the 598-character diary
split with cut5, top_k 15, repetition penalty 1.35, a 5 s synthetic reference; random weights never
emit EOS, so every chunk produces exactly N = max(12, round(2.5 x P)) tokens (P = its target phones)
through the normal EOS path. Reported per mode: wall seconds, real-time factor (wall / audio), T2S
tokens/s, SoVITS, BERT and frontend seconds, time to first audio and peak RSS; then time to first
audio for the 62-character entry (with a saved voice profile, and from the bare reference clip with
enrollment included, as upstream's figure is; exact, and with ``early_start``, which plays the first
chunk before its tokens are all decoded, as upstream's streaming mode does), and the same figures for
a 3,000-character diary.
Upstream on this machine: batch 1 RTF 1.22 (157 s), batch 8 RTF 0.70 (90 s, T2S 81.6 tokens/s, SoVITS
41 s, BERT 10.5 s); first audio for the 62-character entry 1.93 s (streaming mode); peak RSS 4.2-5.8 GB.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import soundfile

from engine.facade import Engine
from engine.kernels import MODES
from engine.model_files import detect_version, init_random
from engine.params import RenderParams
from engine.rendering.results import Timings

BENCH = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "bench"
UPSTREAM = {
    "batch 1": {"rtf": 1.218, "wall_s": 157.3},
    "batch 8": {"rtf": 0.696, "wall_s": 89.9, "t2s_tok_s": 81.6, "sovits_s": 41.0, "bert_s": 10.5},
    "first_audio_62": 1.93,
}


def budget(n_phones: int) -> int:
    """The harness's token budget per segment."""
    return max(12, round(2.5 * n_phones))


def synth_reference(seconds: float = 5.0, sr: int = 32000, seed: int = 777, amp: float = 0.6) -> bytes:
    """A voiced harmonic signal with a wobbling ~140 Hz pitch, an envelope and light noise (16-bit wav)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 * (1 + 0.06 * np.sin(2 * np.pi * 2.3 * t) + 0.03 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(k * phase) / k**1.2 for k in range(1, 12))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 1.1 * t) ** 2
    wave = amp * voiced / np.abs(voiced).max() * envelope + 0.01 * rng.standard_normal(t.size)
    buf = io.BytesIO()
    soundfile.write(buf, wave.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(engine: Engine, profile: object, text: str, batch_size: int, seed: int, early_start: bool = False) -> dict:
    params = RenderParams(top_k=15, repetition_penalty=1.35, text_split_method="cut5", batch_size=batch_size,
                          seed=seed, noise_scale=0.5)  # fmt: skip
    timings = Timings()
    start = time.perf_counter()
    pieces, arrivals = [], []
    for piece in engine.stream_pieces(text, profile, params, timings=timings, seed=seed, token_budget=budget,
                                      early_start=early_start):  # fmt: skip
        arrivals.append(time.perf_counter() - start)
        pieces.append(piece.audio)
    wall = time.perf_counter() - start
    audio_s = sum(len(p) for p in pieces) / 32000
    return {
        "wall_s": wall,
        "audio_s": audio_s,
        "rtf": wall / audio_s,
        "chunks": len(engine.plan(text, profile, params)),
        "tokens": timings.t2s_tokens,
        "t2s_s": timings.t2s_s,
        "t2s_tok_s": timings.t2s_tokens / timings.t2s_s if timings.t2s_s else 0.0,
        "sovits_s": timings.sovits_s,
        "bert_s": timings.bert_s,
        "frontend_s": timings.frontend_s,
        "first_audio_s": timings.first_audio_s,
        "stall_s": playback_stalls(arrivals, [len(p) / 32000 for p in pieces]),
    }


def playback_stalls(arrivals: list[float], durations: list[float]) -> float:
    """Seconds a player starting at the first piece would wait for later pieces (0: smooth playback)."""
    clock, stalled = arrivals[0], 0.0
    for arrived, duration in zip(arrivals, durations, strict=True):
        stalled += max(0.0, arrived - clock)
        clock = max(clock, arrived) + duration
    return stalled


def first_audio_cold(engine: Engine, reference: bytes, prompt_text: str, text: str, seed: int,
                     early_start: bool = False) -> float:
    """Seconds from a bare reference clip to the first audio: enrollment included, as upstream's
    streaming figure includes its prompt HuBERT and BERT (a member's saved profile skips this)."""
    params = RenderParams(top_k=15, repetition_penalty=1.35, text_split_method="cut5", batch_size=8, seed=seed)
    start = time.perf_counter()
    profile = engine.enroll(reference, prompt_text, "zh")
    pieces = engine.stream_pieces(text, profile, params, seed=seed, token_budget=budget, early_start=early_start)
    next(pieces)
    elapsed = time.perf_counter() - start
    pieces.close()
    return elapsed


def summarise(label: str, runs: list[dict]) -> dict:
    best = min(runs, key=lambda r: r["wall_s"])
    median = statistics.median(r["wall_s"] for r in runs)
    print(f"{label:<22} wall {best['wall_s']:7.2f} s (median {median:.2f}) | audio {best['audio_s']:.1f} s | "
          f"RTF {best['rtf']:.3f} | T2S {best['t2s_tok_s']:.1f} tok/s ({best['tokens']} tokens, {best['t2s_s']:.1f} s) | "
          f"SoVITS {best['sovits_s']:.1f} s | BERT {best['bert_s']:.2f} s | frontend {best['frontend_s']:.2f} s | "
          f"first audio {best['first_audio_s']:.2f} s | playback stalls {best['stall_s']:.2f} s | "
          f"chunks {best['chunks']}", flush=True)  # fmt: skip
    return {"label": label, "best": best, "median_wall_s": median}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=Path("/tmp/echodiary-bench-models-full-v2"),
                        help="a full-size models folder (random v2 weights are written there if it is empty)")  # fmt: skip
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["auto", "fp32", "fp16", "bf16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--matmul", default="auto", choices=MODES, help="GPT and BERT CPU kernels (engine.kernels)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--skip-3000", action="store_true", help="leave out the 3,000-character diary")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    if detect_version(args.models) is None:
        print(f"writing full-size random v2 models to {args.models} (once) ...", flush=True)
        init_random(args.models, size="full", version="v2", seed=0)
    t0 = time.perf_counter()
    engine = Engine.load(args.models, device=args.device, precision=args.precision, threads=args.threads,
                         matmul=args.matmul)  # fmt: skip
    print(f"models loaded in {time.perf_counter() - t0:.1f} s on {engine.models.device} "
          f"({engine.models.dtype}, matmul {engine.models.matmul_mode}), {args.threads} threads; peak RSS {peak_rss_mb():.0f} MB", flush=True)
    t0 = time.perf_counter()
    profile = engine.enroll(synth_reference(), (BENCH / "prompt_text.txt").read_text().strip(), "zh")
    print(f"enrollment (HuBERT + BERT of the prompt): {time.perf_counter() - t0:.2f} s, "
          f"{len(profile.prompt_semantic)} prompt tokens", flush=True)

    diary = (BENCH / "diary_zh.txt").read_text().strip()
    entry = (BENCH / "stream_zh.txt").read_text().strip()
    figures: dict = {"device": str(engine.models.device), "dtype": str(engine.models.dtype), "threads": args.threads}
    # warm-up: first calls pay one-time costs (allocator, jieba/pypinyin dictionaries)
    run(engine, profile, entry, 8, seed=0)
    for batch in args.batches:
        runs = [run(engine, profile, diary, batch, seed=42 + r) for r in range(args.repeats)]
        figures[f"diary batch {batch}"] = summarise(f"diary 598c batch {batch}", runs)
    runs = [run(engine, profile, entry, 8, seed=42 + r) for r in range(max(3, args.repeats))]
    figures["entry 62c"] = summarise("entry 62c (TTFA)", runs)
    runs = [run(engine, profile, entry, 8, seed=42 + r, early_start=True) for r in range(max(3, args.repeats))]
    figures["entry 62c early start"] = summarise("entry 62c early start", runs)
    prompt_text = (BENCH / "prompt_text.txt").read_text().strip()
    cold = [first_audio_cold(engine, synth_reference(), prompt_text, entry, seed=42 + r) for r in range(3)]
    figures["first_audio_cold_s"] = min(cold)
    print(f"entry 62c first audio incl. enrollment: {min(cold):.2f} s (median {statistics.median(cold):.2f})",
          flush=True)
    cold = [first_audio_cold(engine, synth_reference(), prompt_text, entry, 42 + r, early_start=True) for r in range(3)]
    figures["first_audio_cold_early_s"] = min(cold)
    print(f"entry 62c first audio incl. enrollment, early start: {min(cold):.2f} s "
          f"(median {statistics.median(cold):.2f})", flush=True)
    if not args.skip_3000:
        long_text = (diary + "\n") * 6
        long_text = long_text[: long_text.rfind("。", 0, 3000) + 1]
        runs = [run(engine, profile, long_text, max(args.batches), seed=42)]
        figures["diary 3000c"] = summarise(f"diary {len(long_text)}c batch {max(args.batches)}", runs)
    figures["peak_rss_mb"] = peak_rss_mb()
    print(f"peak RSS {figures['peak_rss_mb']:.0f} MB")
    print("upstream here (min of 5): batch 1 RTF 1.218 (157.3 s), batch 8 RTF 0.696 (89.9 s, T2S 81.6 tok/s, "
          "SoVITS 41.0 s, BERT 10.5 s), first audio 62c 1.93 s, peak RSS 4.2-5.8 GB")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str))


if __name__ == "__main__":
    main()
