"""T2S decode speed on full-size random weights: tokens/s at batch 1, 4 and 8 with the KV cache.

    python -m ops.bench.t2s                                  # CPU, 2 threads, float32 (upstream's setting)
    python -m ops.bench.t2s --device cuda --dtype float16    # or bfloat16

Inputs and rules follow ../shared/reference/bench/ (bench_config.json "micro", README.md): top_k 15,
repetition penalty 1.35, the 150-token prompt, 36 prompt phones + the segment's phones, BERT
``0.5 sin(0.1 c + 0.7 p)``, the generator seeded with the repeat number. Random weights never emit EOS,
so like upstream's harness a logits hook keeps EOS at -inf until a row has 150 new tokens and then
forces it, and the decoder's own EOS path ends the row (N + 1 model passes per row incl. the prefill).

Reported per batch size: seconds (min / median over the repeats, the first run is a warm-up and not
counted), aggregate tokens/s (new tokens / seconds, prefill included), prefill seconds, median ms per
decode step and the process CPU seconds of the best run (on a shared machine, CPU seconds / threads
is the better guide when the load average is high); finally the process's peak RSS (and peak GPU
memory on CUDA).
Upstream on this machine (float32, 2 threads): 28.7 tokens/s at batch 1 (prefill 0.27 s, 31.9 ms/step),
61.0 at batch 4, 79.7 at batch 8 (83 ms/step).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import time
from pathlib import Path

import torch

from engine.decoding import DecodingOptions, T2SRequest, decode, new_generator
from engine.kernels import MODES, choose_mode
from engine.t2s import T2SConfig, Text2SemanticGPT, random_t2s_weights

BENCH = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "bench" / "bench_config.json"
SEED = 0
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}  # fmt: skip


def build_model(device: str, dtype: torch.dtype, half_weights: bool = False) -> Text2SemanticGPT:
    config = T2SConfig.full()
    # Round through float16 as the official file stores the weights.
    state = {k: v.half() for k, v in random_t2s_weights(config, SEED).items()}
    return Text2SemanticGPT.from_state_dict(config, state, device, dtype, half_weights)


def bert_features(n_phones: int) -> torch.Tensor:
    c = torch.arange(1024, dtype=torch.float32)[:, None]
    p = torch.arange(n_phones, dtype=torch.float32)[None, :]
    return 0.5 * torch.sin(0.1 * c + 0.7 * p)


def requests_for(micro: dict, segments: list[list[int]], new_tokens: int) -> list[T2SRequest]:
    prompt = torch.tensor(micro["prompt_semantic"])
    out = []
    for segment in segments:
        phones = torch.tensor(micro["prompt_phones"] + segment)
        out.append(T2SRequest(phones, bert_features(len(phones)), prompt, max_new_tokens=new_tokens + 1))
    return out


class Budget:
    """Upstream's harness rule: EOS impossible before ``n`` new tokens, then certain; also times steps."""

    def __init__(self, n: int, eos: int) -> None:
        self.n, self.eos = n, eos
        self.stamps: list[float] = []

    def __call__(self, logits: torch.Tensor, items: torch.Tensor, sampled: torch.Tensor) -> None:
        self.stamps.append(time.perf_counter())
        logits[:, self.eos] = torch.where(sampled < self.n, float("-inf"), 1e4).to(logits.dtype)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_once(model: Text2SemanticGPT, requests: list[T2SRequest], options: DecodingOptions, n: int,
             seed: int, device: str) -> tuple[float, float, list[float], int, float]:  # fmt: skip
    """(wall seconds, prefill seconds, per-step seconds, tokens produced, process CPU seconds)."""
    budget = Budget(n, model.config.eos)
    _sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    results = decode(model, requests, options, new_generator(seed, device), logits_hook=budget)
    _sync(device)
    total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    produced = sum(len(r.tokens) for r in results)
    assert all(len(r.tokens) == n and not r.hit_cap for r in results), "budget rule not honoured"
    steps = [b - a for a, b in zip(budget.stamps, budget.stamps[1:], strict=False)]
    return total, budget.stamps[0] - start, steps, produced, cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--config", type=Path, default=BENCH)
    parser.add_argument("--weights", choices=["float16", "float32"], default="float32",
                        help="storage of the linear weights: float32 as upstream keeps them (the engine's default) "
                             "or float16 widened per use (bit-identical results, half the memory)")
    parser.add_argument("--matmul", choices=MODES, default="auto",
                        help="the linear layers' kernels (engine.kernels): exact float32 as upstream, or a fast mode")
    parser.add_argument("--json", type=Path, help="also write the figures here (ops.bench.versus reads them)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    bench = json.loads(args.config.read_text())
    micro, sampling = bench["micro"], bench["sampling"]
    n = int(micro["new_tokens"])
    options = DecodingOptions(top_k=sampling["top_k"], top_p=sampling["top_p"], temperature=sampling["temperature"],
                              repetition_penalty=sampling["repetition_penalty"], early_stop_num=-1)  # fmt: skip
    segments = {1: [micro["segment_phones"]["single"]], 4: micro["segment_phones"]["batch4"],
                8: micro["segment_phones"]["batch8"]}  # fmt: skip

    dtype = DTYPES[args.dtype]
    model = build_model(args.device, dtype, args.weights == "float16")
    model.use_matmul(choose_mode(args.matmul, torch.device(args.device), dtype))
    stored = model.h.layers[0].linear1.weight.dtype
    params = sum(p.numel() for p in model.parameters())
    print(f"T2S full size ({params / 1e6:.1f} M params), device={args.device} dtype={dtype} "
          f"(linear weights stored as {stored}, matmul {model.matmul_mode}) "
          f"threads={torch.get_num_threads()}, {n} new tokens per row, top_k {options.top_k}, "
          f"rp {options.repetition_penalty}; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    figures: dict[str, dict[str, float]] = {}
    for batch in args.batches:
        requests = requests_for(micro, segments[batch], n)
        runs = [run_once(model, requests, options, n, r, args.device) for r in range(args.repeats + 1)][1:]
        totals = [r[0] for r in runs]
        prefills = [r[1] for r in runs]
        step_ms = [1000 * statistics.median(r[2]) for r in runs]
        produced = runs[0][3]
        cpu = min(r[4] for r in runs)
        lens = [len(r.phones) + len(r.prompt) for r in requests]
        print(
            f"batch {batch} (prefix {min(lens)}..{max(lens)} positions): {min(totals):.2f} / "
            f"{statistics.median(totals):.2f} s (min / median), {produced / min(totals):.1f} / "
            f"{produced / statistics.median(totals):.1f} tokens/s, prefill {min(prefills):.3f} s, "
            f"{min(step_ms):.1f} ms/step; process CPU {cpu:.2f} s"
        )
        figures[f"batch {batch}"] = {"seconds_min": min(totals), "tokens_per_s": produced / min(totals),
                                     "tokens_per_s_median": produced / statistics.median(totals),
                                     "step_ms": min(step_ms), "prefill_s": min(prefills)}
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    line = f"peak RSS {rss_mb:.0f} MB"
    if args.device.startswith("cuda"):
        line += f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MB"
    print(line)
    assert math.isfinite(rss_mb)
    if args.json:
        args.json.write_text(json.dumps({**figures, "peak_rss_mb": rss_mb}, indent=1))


if __name__ == "__main__":
    main()
