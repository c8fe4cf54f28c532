"""Planning and scheduling a render: its chunks (ids, seeds, cached audio), the order they are
batched in, which chunks share a feature call, and how many tokens each may decode."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from engine import guards
from engine.decoding import LogitsHook
from engine.errors import BadText
from engine.params import RenderParams
from engine.profile import VoiceProfile
from engine.rendering.caches import ChunkCache, chunk_id
from engine.rendering.results import ChunkReport
from engine.runtime import Models
from engine.text import reader_id, split_text
from engine.text_features import TextFeatures

FEATURE_GROUP = 16  # chunks whose phones and BERT features are computed in one call

# A render's pause point: called between decoding steps and vocoder windows (many times a second,
# so it must be cheap when it has nothing to do). It may do other work there, even another render
# on the same models, and the render goes on exactly where it was when it returns.
PausePoint = Callable[[], None]


@dataclass
class PlannedChunk:
    """One chunk while it is rendered: its report, then its features (until its batch is done), then
    its audio (until it is played): a render holds a batch's worth, not the diary's."""

    report: ChunkReport
    features: TextFeatures | None = None
    seed: int = 0
    audio: np.ndarray | None = None
    rendered: bool = False  # its batch is done: its features are gone and must not be computed again
    cached: bool = False  # its audio is in the chunk cache: loaded when its turn to play comes


def draw_seed(params: RenderParams) -> int:
    """The request's seed, or a fresh one when it asks for a random render (seed -1)."""
    return params.seed if params.seed >= 0 else secrets.randbits(63)


def plan_chunks(text: str, profile: VoiceProfile, params: RenderParams, model_id: str) -> list[ChunkReport]:
    """The chunks a render will produce, with their stable ids (no model work)."""
    segments = [s for s in split_text(text, params.text_lang, params.text_split_method) if s.strip()]
    if not segments:
        raise BadText("the text has nothing to read aloud")
    voice = profile.fingerprint()
    sound = params.sound_key()
    reader = reader_id()
    return [ChunkReport(i, chunk_id(seg, voice, model_id, sound, reader), seg) for i, seg in enumerate(segments)]


def prepare_chunks(reports: list[ChunkReport], seed: int, chunk_cache: ChunkCache | None) -> list[PlannedChunk]:
    """Each chunk with its own seed (from its id and the request's), marked when it is cached. Its
    audio is not loaded here: a resumed diary would hold all of it at once (RenderStream loads each
    cached chunk when its turn to play comes)."""
    chunks = [PlannedChunk(report) for report in reports]
    for chunk in chunks:
        chunk.seed = int(chunk.report.id[:15], 16) ^ (seed & (2**62 - 1))
        if chunk_cache is not None and chunk_cache.contains(chunk.report.id):
            chunk.cached = chunk.report.cached = True
    return chunks


def ramped_batches(todo: list[PlannedChunk], batch_size: int) -> list[list[PlannedChunk]]:
    """Chunks in text order: the first alone (so audio starts early), then batches doubling up to
    ``batch_size``, so each batch is decoded while the audio before it plays (a full batch at once
    would leave a listener waiting after the first chunk)."""
    batches, start, size = [todo[:1]], 1, 2
    while start < len(todo):
        size = min(size, batch_size)
        batches.append(todo[start : start + size])
        start, size = start + size, size * 2
    return batches


def feature_groups_of(batch: list[PlannedChunk], todo: list[PlannedChunk]) -> list[PlannedChunk]:
    """The chunks of ``todo`` still without features that share a feature group with ``batch``.

    BERT costs about the same for one segment as for a dozen, so features go in fixed groups of
    ``FEATURE_GROUP`` chunks of ``todo`` (the first chunk alone, for early audio) whatever the T2S
    batch size is: the same text then gets the same features, and batch-1 renders stay cheap.
    """
    def group_of(i: int) -> int:
        return 0 if i == 0 else 1 + (i - 1) // FEATURE_GROUP

    wanted = {group_of(i) for i, c in enumerate(todo) if any(c is b for b in batch)}
    return [c for i, c in enumerate(todo) if c.features is None and not c.rendered and group_of(i) in wanted]


def token_caps(chunks: list[PlannedChunk], models: Models,
               token_budget: Callable[[int], int] | None) -> tuple[list[int], LogitsHook | None]:  # fmt: skip
    """Each chunk's cap on new tokens, from its phone count, and no hook; or, for benchmarks, caps
    and a hook that force EOS after ``token_budget(phones)`` tokens."""
    if token_budget is None:
        return [guards.token_cap(c.report.phones, 50 * models.max_sec) for c in chunks], None
    budgets = [token_budget(c.report.phones) for c in chunks]
    return [b + 1 for b in budgets], _force_eos_after(budgets, models.t2s.config.eos)


def _force_eos_after(budgets: list[int], eos: int) -> LogitsHook:
    """Benchmarks: make EOS the sure choice once a row has its budget of tokens (upstream's harness rule)."""
    budget = torch.tensor(budgets)

    def hook(logits: torch.Tensor, items: torch.Tensor, step: int) -> None:
        done = (budget.to(items.device)[items] <= step)
        logits[:, eos] = torch.where(done, torch.full_like(logits[:, eos], 1e4), torch.full_like(logits[:, eos], -1e4))

    return hook
