"""Semantic tokens of a render's chunks: the first chunk decoded alone, then every other one in one
pool that keeps its batch full (a chunk enters as soon as a row is free); then the guards' retries,
one chunk at a time so that they do not depend on batching."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from typing import TypeVar

import numpy as np
import torch

from engine import guards
from engine.decoding import DecodeState, DecodingOptions, RowLimit, T2SRequest, T2SResult, decode_steps
from engine.params import RenderParams
from engine.profile import VoiceProfile
from engine.rendering.early_start import EarlyStart
from engine.rendering.planning import PausePoint, PlannedChunk, force_eos_after, token_cap
from engine.rendering.results import Timings
from engine.runtime import Models

RETRY_SEED_STEP = 7919  # a retry's seed: the chunk's plus this many per attempt
RETRY_TOP_K = 5  # retries after greedy decoding must sample, or they would repeat it

T = TypeVar("T")


def semantic_tokens(models: Models, batch: list[PlannedChunk], profile: VoiceProfile, params: RenderParams,
                    timings: Timings, token_budget: Callable[[int], int] | None,
                    early: EarlyStart | None = None,
                    pause: PausePoint | None = None) -> Generator[np.ndarray, None, dict[int, torch.Tensor]]:  # fmt: skip
    """Semantic tokens of each chunk (by chunk index, the generator's return value): one batched
    decode, then the guards' retries. Yields the early audio of ``early`` when it starts.
    ``token_budget`` (benchmarks) turns the guards off. ``pause`` is called after every decoding step."""
    options = decoding_options(params)
    results = yield from decode_batch(models, batch, profile, options, batch[0].seed, timings, token_budget, early,
                                      pause)  # fmt: skip
    return {c.report.index: _settle(models, c, r, profile, params, timings, token_budget, pause)
            for c, r in zip(batch, results, strict=True)}  # fmt: skip


def pooled_tokens(models: Models, chunks: list[PlannedChunk], prepare: Callable[[PlannedChunk], None],
                  profile: VoiceProfile, params: RenderParams, timings: Timings,
                  token_budget: Callable[[int], int] | None, rows: RowLimit,
                  pause: PausePoint | None = None) -> Iterator[tuple[PlannedChunk, torch.Tensor]]:  # fmt: skip
    """Each chunk with its tokens (guards passed) as soon as they are done, in the order they finish:
    one decode of ``params.batch_size`` rows at most (``rows(finished)`` of them) in which the next
    chunk, in text order, enters when a row stops. ``prepare(chunk)`` (its features) runs when the
    chunk is about to enter, not before. Seeded from the first chunk's seed, as a batch is."""
    options = decoding_options(params)
    budgets: list[int] = []  # benchmarks: by request index, filled as the chunks enter

    def requests() -> Iterator[T2SRequest]:
        for chunk in chunks:
            prepare(chunk)
            cap = token_cap(chunk, models, token_budget)
            budgets.append(cap - 1)
            yield t2s_request(chunk, profile, cap)

    hook = force_eos_after(budgets, models.t2s.config.eos) if token_budget is not None else None
    generator = torch.Generator(device=models.device).manual_seed(chunks[0].seed)
    steps = decode_steps(models.t2s, requests(), options, generator, logits_hook=hook, width=params.batch_size,
                         rows=rows)  # fmt: skip
    while (state := _timed_step(steps, timings)) is not None:
        for item in state.stopped:
            result = state.results[item]
            assert result is not None
            timings.t2s_tokens += len(result.tokens)
            yield chunks[item], _settle(models, chunks[item], result, profile, params, timings, token_budget, pause)
        if pause is not None:
            pause()


def decoding_options(params: RenderParams) -> DecodingOptions:
    return DecodingOptions(params.top_k, params.top_p, params.temperature, params.repetition_penalty)


def _timed_step(steps: Iterator[DecodeState], timings: Timings) -> DecodeState | None:
    """The decode's next state; its time is T2S time, less the features computed for chunks entering."""
    t0, bert_s = time.perf_counter(), timings.bert_s
    state = next(steps, None)
    timings.t2s_s += time.perf_counter() - t0 - (timings.bert_s - bert_s)
    return state


def _settle(models: Models, chunk: PlannedChunk, result: T2SResult, profile: VoiceProfile, params: RenderParams,
            timings: Timings, token_budget: Callable[[int], int] | None,
            pause: PausePoint | None) -> torch.Tensor:  # fmt: skip
    """The chunk's kept tokens (the guards' choice, unless a benchmark budget turned them off), noted
    in its report."""
    codes = result.tokens
    if token_budget is None:
        options = decoding_options(params)
        if options.top_k == 1:
            options = DecodingOptions(RETRY_TOP_K, params.top_p, params.temperature, params.repetition_penalty)
        codes = _guarded(models, chunk, result, profile, options, params, timings, pause)
    chunk.report.tokens = len(codes)
    chunk.report.semantic = codes.tolist()
    return codes


def _guarded(models: Models, chunk: PlannedChunk, result: T2SResult, profile: VoiceProfile,
             options: DecodingOptions, params: RenderParams,
             timings: Timings, pause: PausePoint | None = None) -> torch.Tensor:  # fmt: skip
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
        retried = _without_audio(decode_batch(models, [chunk], profile, options, seed, timings, None, None, pause))[0]
        verdict = guards.judge(retried.tokens, chunk.report.phones, retried.hit_cap)
        if verdict.ok or _better(retried.tokens, best):
            best = retried.tokens
    if not verdict.ok:
        chunk.report.problems.append(f"{verdict.problem} (kept the best attempt)")
    return best


def _without_audio(decoding: Generator[np.ndarray, None, T]) -> T:
    """The result of a decode without an early start, which has no audio to play on the way."""
    try:
        next(decoding)
    except StopIteration as done:
        return done.value
    raise AssertionError("a decode without an early start yielded audio")


def decode_batch(models: Models, chunks: list[PlannedChunk], profile: VoiceProfile, options: DecodingOptions,
                 seed: int, timings: Timings, token_budget: Callable[[int], int] | None,
                 early: EarlyStart | None = None,
                 pause: PausePoint | None = None) -> Generator[np.ndarray, None, list[T2SResult]]:  # fmt: skip
    """One batched T2S call; caps from the phone counts (or the benchmark budget). Returns the
    results; yields ``early``'s audio if it starts during the decode, and calls ``pause`` after
    every step (neither's time is T2S time)."""
    caps = [token_cap(c, models, token_budget) for c in chunks]
    hook = force_eos_after([cap - 1 for cap in caps], models.t2s.config.eos) if token_budget is not None else None
    generator = torch.Generator(device=models.device).manual_seed(seed)
    t0 = time.perf_counter()
    state: DecodeState | None = None
    requests = [t2s_request(chunk, profile, cap) for chunk, cap in zip(chunks, caps, strict=True)]
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


def t2s_request(chunk: PlannedChunk, profile: VoiceProfile, cap: int) -> T2SRequest:
    """The chunk's phones and BERT features after the voice's prompt, with its token cap."""
    features = chunk.features
    assert features is not None
    prompt_ids = torch.tensor(profile.prompt_phone_ids, dtype=torch.long)
    phones = torch.cat([prompt_ids, torch.tensor(features.phone_ids, dtype=torch.long)])
    bert = torch.cat([profile.prompt_bert.to(features.bert), features.bert], dim=1)
    return T2SRequest(phones, bert, profile.prompt_semantic, max_new_tokens=cap)


def _better(candidate: torch.Tensor, best: torch.Tensor) -> bool:
    """Among flawed attempts keep the one with the fewest repeats (then the shorter one)."""
    return (guards.longest_run(candidate), len(candidate)) < (guards.longest_run(best), len(best))
