"""s1 GPT goldens (``s1_golden.safetensors`` + JSON): logits, greedy naive/batched/reference-free
decoding, repetition penalty 1, the sampling filters, and the seeded sampled run.

The seeded run passes because our exponential race draws from a ``torch.Generator`` seeded like
upstream's global one, with the same draw shapes in the same order ([1, 1024] for the first 11
steps, [1, 1025] after).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from engine.checkpoints import load_t2s_checkpoint
from engine.decoding import (
    DecodingOptions,
    infer_panel_batch_infer,
    infer_panel_naive,
    logits_to_probs,
    new_generator,
    seen_tokens,
)
from engine.parity import GoldenResult, compare, compare_exact, load_golden
from engine.t2s import Text2SemanticGPT

LOGITS_ATOL = 1e-4  # fixtures/README.md section 3
GREEDY_SEED = 0  # greedy decoding still draws from the generator; any seed gives the same tokens


def _idx(name: str, ours: int, golden: int) -> GoldenResult:
    return compare_exact(f"{name}.idx", [ours], [golden])


def check(folder: Path) -> Iterator[GoldenResult]:
    folder = Path(folder)
    g, meta = load_golden(folder, "s1_golden")
    model = Text2SemanticGPT.from_checkpoint(load_t2s_checkpoint(folder / "models" / "s1_tiny.ckpt"))
    prompt = g["in.prompt"]
    phones = {n: g[f"in.phones_{n}"] for n in "ab"}
    bert = {n: g[f"in.bert_{n}"] for n in "ab"}
    early_stop = int(meta["early_stop_num"])
    greedy = DecodingOptions(top_k=1, top_p=1.0, temperature=1.0, repetition_penalty=1.35, early_stop_num=early_stop)

    for n in "ab":
        y, idx, logits = infer_panel_naive(
            model, phones[n][None], prompt, bert[n][None], greedy, new_generator(GREEDY_SEED), record_logits=True
        )
        yield compare_exact(f"s1 naive_{n}.y", y, g[f"naive_{n}.y"])
        yield _idx(f"s1 naive_{n}", idx, meta[f"naive_{n}.idx"])
        yield compare(f"s1 naive_{n}.step_logits", torch.stack(logits), g[f"naive_{n}.step_logits"], LOGITS_ATOL)
        if n == "a":
            yield compare("s1 first_step_logits_a", logits[0][None], g["first_step_logits_a"], LOGITS_ATOL)

    rp1 = DecodingOptions(top_k=1, top_p=1.0, temperature=1.0, repetition_penalty=1.0, early_stop_num=early_stop)
    for n in "ab":
        y, idx = infer_panel_naive(model, phones[n][None], prompt, bert[n][None], rp1, new_generator(GREEDY_SEED))
        yield compare_exact(f"s1 naive_{n}_rp1.y", y, g[f"naive_{n}_rp1.y"])
        if f"naive_{n}_rp1.idx" in meta:
            yield _idx(f"s1 naive_{n}_rp1", idx, meta[f"naive_{n}_rp1.idx"])

    y, idx = infer_panel_naive(model, phones["a"][None], None, bert["a"][None], greedy, new_generator(GREEDY_SEED))
    yield compare_exact("s1 naive_a_noprompt.y", y, g["naive_a_noprompt.y"])
    ok_dtype = y.dtype == g["naive_a_noprompt.y"].dtype
    yield GoldenResult("s1 naive_a_noprompt.dtype", ok_dtype, 0.0 if ok_dtype else float("inf"), str(y.dtype))
    yield _idx("s1 naive_a_noprompt", idx, meta["naive_a_noprompt.idx"])

    y_list, idx_list, logits = infer_panel_batch_infer(
        model, [phones["a"], phones["b"]], prompt.expand(2, -1), [bert["a"], bert["b"]], greedy,
        new_generator(GREEDY_SEED), record_logits=True,
    )
    for i, n in enumerate("ab"):
        yield compare_exact(f"s1 batch_{n}.y", y_list[i], g[f"batch_{n}.y"])
        yield _idx(f"s1 batch_{n}", idx_list[i], meta[f"batch_{n}.idx"])
    first = torch.stack([steps[0] for steps in logits])
    yield compare("s1 batch.first_step_logits", first, g["batch.first_step_logits"], LOGITS_ATOL)

    sampled = meta["naive_a_sampled"]
    options = DecodingOptions(
        top_k=sampled["top_k"], top_p=sampled["top_p"], temperature=sampled["temperature"],
        repetition_penalty=sampled["repetition_penalty"], early_stop_num=early_stop,
    )
    generator = new_generator(int(sampled["torch_manual_seed"]))
    y, idx = infer_panel_naive(model, phones["a"][None], prompt, bert["a"][None], options, generator)
    yield compare_exact("s1 naive_a_sampled.y", y, g["naive_a_sampled.y"])
    if "idx" in sampled:
        yield _idx("s1 naive_a_sampled", idx, sampled["idx"])

    vocab = model.config.vocab_size
    for case, s in meta["probs.cases"].items():
        options = DecodingOptions(
            top_k=s["top_k"], top_p=s["top_p"], temperature=s["temperature"], repetition_penalty=s["repetition_penalty"]
        )
        probs = logits_to_probs(g["probs.in_logits"].clone(), seen_tokens(g["probs.in_prev"], vocab), options)
        yield compare(f"s1 probs.{case}", probs, g[f"probs.{case}"], LOGITS_ATOL)
