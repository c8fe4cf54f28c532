"""SoVITS decode speed on full-size random weights: real-time factor for 150 and 600 tokens.

    python -m ops.bench.sovits                       # CPU, 2 threads, float32 (upstream's setting)
    python -m ops.bench.sovits --device cuda --dtype float16

Inputs follow ../shared/reference/bench/bench_config.json ("sovits"): 150 and 600 semantic tokens,
2.5 tokens per phone, seed 4242, noise_scale 0.5, the reference a 5 s voiced 32 kHz clip's spectrogram.
Each size runs the single generator call and the chunked generator (``vocode_chunked``), reports
min/median seconds and RTF (seconds / audio seconds), and the chunked output's max abs difference
from the single call. Upstream on this machine: RTF 0.27 (150 tokens) / 0.42 (600 tokens).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

import torch

from engine import audio
from engine.sovits import SoVITS, SoVITSConfig
from engine.sovits.loading import build_sovits
from engine.sovits.random_weights import random_sovits_weights

SEED = 4242
TOKENS_PER_PHONE = 2.5


def reference_spectrogram(seconds: float = 5.0, seed: int = 777) -> torch.Tensor:
    """A voiced harmonic signal around 140 Hz with a wobbling pitch and light noise -> [1, 1025, R]."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * audio.SAMPLE_RATE)) / audio.SAMPLE_RATE
    f0 = 140 + 15 * torch.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / audio.SAMPLE_RATE
    wave = sum(torch.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.6 + 0.4 * torch.sin(2 * math.pi * 2.0 * t).abs()
    wave = 0.6 * envelope * wave / wave.abs().max() + 0.01 * torch.randn(t.shape, generator=gen)
    return audio.spectrogram(wave[None], audio.N_FFT, audio.HOP, audio.WIN)


def build_model(version: str, device: str, dtype: torch.dtype) -> SoVITS:
    config = SoVITSConfig.full(version)
    model = build_sovits(config, random_sovits_weights(config, SEED, with_posterior=False))
    return model.to(device=device, dtype=dtype).for_inference()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    dtype = getattr(torch, args.dtype)
    model = build_model(args.version, args.device, dtype)
    refer = reference_spectrogram().to(args.device, dtype)
    sv = torch.rand(1, 20480, generator=torch.Generator().manual_seed(SEED)).to(args.device, dtype) * 0.3
    gen = torch.Generator().manual_seed(SEED)
    print(f"SoVITS {args.version} full size, device={args.device} dtype={args.dtype} threads={torch.get_num_threads()}"
          f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus; cpu = process CPU seconds, min)")
    figures: dict[str, dict[str, float]] = {}
    with torch.inference_mode():
        ge = model.timbre(refer, sv if model.config.is_pro else None)
        for tokens in args.tokens:
            codes = torch.randint(0, 1024, (1, 1, tokens), generator=gen).to(args.device)
            phones = torch.randint(0, 732, (1, round(tokens / TOKENS_PER_PHONE)), generator=gen).to(args.device)
            seconds = tokens * 2 * model.config.samples_per_frame / model.config.sampling_rate
            modes: list[tuple[str, int | None]] = [("single", None)] + [(f"chunk{c}", c) for c in args.chunks]
            outputs = {}
            for name, chunk in modes:
                times, cpu_times = [], []
                for r in range(args.repeats + 1):  # the first run warms up and is not counted
                    noise = torch.Generator().manual_seed(r)
                    _sync(args.device)
                    start, cpu_start = time.perf_counter(), time.process_time()
                    wav = model.decode(codes, phones, refer, 0.5, 1.0, sv if model.config.is_pro else None,
                                       generator=noise, ge=ge, chunk_frames=chunk, overlap_frames=args.overlap)  # fmt: skip
                    _sync(args.device)
                    if r:
                        times.append(time.perf_counter() - start)
                        cpu_times.append(time.process_time() - cpu_start)
                    outputs[name] = wav.float().cpu()
                diff = (outputs[name] - outputs["single"]).abs().max().item()
                best, median = min(times), statistics.median(times)
                print(
                    f"  {tokens:4d} tokens ({seconds:5.1f} s audio) {name:>9}: "
                    f"min {best:6.3f} s  median {median:6.3f} s  RTF {best / seconds:.3f} / {median / seconds:.3f}"
                    f"  cpu {min(cpu_times):6.2f} s  max|diff vs single| {diff:.2e}"
                )
                figures[f"{tokens} {name}"] = {"seconds_min": best, "rtf": best / seconds,
                                               "rtf_median": median / seconds}
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--version", default="v2", choices=["v2", "v2Pro", "v2ProPlus"])
    parser.add_argument("--tokens", type=int, nargs="+", default=[150, 600])
    parser.add_argument("--chunks", type=int, nargs="*", default=[300], help="chunk sizes in frames for vocode_chunked")
    parser.add_argument("--overlap", type=int, default=16, help="context frames on each side of a chunk")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here (ops.bench.versus reads them)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    figures = bench(args)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
