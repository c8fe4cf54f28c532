"""Semantic tokens of a batch of chunks: one batched T2S decode, then the guards' retries, one chunk
at a time so that they do not depend on batching."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator

import numpy as np
import torch

from engine import guards
from engine.decoding import DecodeState, DecodingOptions, T2SRequest, T2SResult, decode_steps
from engine.params import RenderParams
from engine.profile import VoiceProfile
from engine.rendering.early_start import EarlyStart
from engine.rendering.planning import PausePoint, PlannedChunk, token_caps
from engine.rendering.results import Timings
from engine.runtime import Models

RETRY_SEED_STEP = 7919  # a retry's seed: the chunk's plus this many per attempt
RETRY_TOP_K = 5  # retries after greedy decoding must sample, or they would repeat it


def semantic_tokens(models: Models, batch: list[PlannedChunk], profile: VoiceProfile, params: RenderParams,
                    timings: Timings, token_budget: Callable[[int], int] | None,
                    early: EarlyStart | None = None,
                    pause: PausePoint | None = None) -> Generator[np.ndarray, None, dict[int, torch.Tensor]]:  # fmt: skip
    """Semantic tokens of each chunk (by chunk index, the generator's return value): one batched
    decode, then the guards' retries. Yields the early audio of ``early`` when it starts.
    ``token_budget`` (benchmarks) turns the guards off. ``pause`` is called after every decoding step."""
    options = DecodingOptions(params.top_k, params.top_p, params.temperature, params.repetition_penalty)
    results = yield from decode_batch(models, batch, profile, options, batch[0].seed, timings, token_budget, early,
                                      pause)  # fmt: skip
    tokens = {c.report.index: r.tokens for c, r in zip(batch, results, strict=True)}
    if token_budget is None:
        if options.top_k == 1:
            options = DecodingOptions(RETRY_TOP_K, params.top_p, params.temperature, params.repetition_penalty)
        for chunk, result in zip(batch, results, strict=True):
            tokens[chunk.report.index] = yield from _guarded(models, chunk, result, profile, options, params, timings,
                                                             pause)  # fmt: skip
    for chunk in batch:
        codes = tokens[chunk.report.index]
        chunk.report.tokens = len(codes)
        chunk.report.semantic = codes.tolist()
    return tokens


def _guarded(models: Models, chunk: PlannedChunk, result: T2SResult, profile: VoiceProfile,
             options: DecodingOptions, params: RenderParams,
             timings: Timings, pause: PausePoint | None = None) -> Generator[np.ndarray, None, torch.Tensor]:  # fmt: skip
    """The chunk's tokens once the guards accept them, retrying with other seeds up to
    ``params.max_retries`` times; if no attempt passes, the best flawed one (noted in the report)."""
    best = result.tokens
    verdict = guards.judge(result.tokens, chunk.report.phones, result.hit_cap)
    for attempt in range(1, params.max_retries + 1):
        if verdict.ok:
            break
        chunk.report.problems.append(verdict.problem or "")
        chunk.report.retries += 1
        seed = (chunk.seed + attempt * RETRY_SEED_STEP) % 2**63
        retried = (yield from decode_batch(models, [chunk], profile, options, seed, timings, None, None, pause))[0]
        verdict = guards.judge(retried.tokens, chunk.report.phones, retried.hit_cap)
        if verdict.ok or _better(retried.tokens, best):
            best = retried.tokens
    if not verdict.ok:
        chunk.report.problems.append(f"{verdict.problem} (kept the best attempt)")
    return best


def decode_batch(models: Models, chunks: list[PlannedChunk], profile: VoiceProfile, options: DecodingOptions,
                 seed: int, timings: Timings, token_budget: Callable[[int], int] | None,
                 early: EarlyStart | None = None,
                 pause: PausePoint | None = None) -> Generator[np.ndarray, None, list[T2SResult]]:  # fmt: skip
    """One batched T2S call; caps from the phone counts (or the benchmark budget). Returns the
    results; yields ``early``'s audio if it starts during the decode, and calls ``pause`` after
    every step (neither's time is T2S time)."""
    caps, hook = token_caps(chunks, models, token_budget)
    generator = torch.Generator(device=models.device).manual_seed(seed)
    t0 = time.perf_counter()
    state: DecodeState | None = None
    requests = t2s_requests(chunks, profile, caps)
    for state in decode_steps(models.t2s, requests, options, generator, logits_hook=hook):
        if early is not None and early.due(state):
            timings.t2s_s += time.perf_counter() - t0
            yield from early.start(state.partial(0))
            t0 = time.perf_counter()
        if pause is not None:
            timings.t2s_s += time.perf_counter() - t0
            pause()
            t0 = time.perf_counter()
    timings.t2s_s += time.perf_counter() - t0
    results = state.finished() if state is not None else []
    timings.t2s_tokens += sum(len(r.tokens) for r in results)
    return results


def t2s_requests(chunks: list[PlannedChunk], profile: VoiceProfile, caps: list[int]) -> list[T2SRequest]:
    """Each chunk's phones and BERT features after the voice's prompt, with its token cap."""
    prompt_ids = torch.tensor(profile.prompt_phone_ids, dtype=torch.long)
    out = []
    for chunk, cap in zip(chunks, caps, strict=True):
        features = chunk.features
        assert features is not None
        phones = torch.cat([prompt_ids, torch.tensor(features.phone_ids, dtype=torch.long)])
        bert = torch.cat([profile.prompt_bert.to(features.bert), features.bert], dim=1)
        out.append(T2SRequest(phones, bert, profile.prompt_semantic, max_new_tokens=cap))
    return out


def _better(candidate: torch.Tensor, best: torch.Tensor) -> bool:
    """Among flawed attempts keep the one with the fewest repeats (then the shorter one)."""
    return (guards.longest_run(candidate), len(candidate)) < (guards.longest_run(best), len(best))
