"""Planning and scheduling a render: its chunks (ids, seeds, cached audio), how many rows decode
them together, which chunks share a feature call, and how many tokens each may decode."""

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
from engine.rendering.caches import ChunkCache, chunk_id, early_chunk_id
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
    """One chunk while it is rendered: its report, then its features (until it is vocoded), then its
    audio (until it is played): a render holds a batch's worth, not the diary's."""

    report: ChunkReport
    features: TextFeatures | None = None
    seed: int = 0
    audio: np.ndarray | None = None
    rendered: bool = False  # vocoded: its features are gone and must not be computed again
    cached: bool = False  # its audio is in the chunk cache: loaded when its turn to play comes
    cache_id: str = ""  # its key in the chunk cache (its id; another for a first chunk that starts early)


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


def prepare_chunks(reports: list[ChunkReport], seed: int, chunk_cache: ChunkCache | None,
                   early_start: bool = False) -> list[PlannedChunk]:  # fmt: skip
    """Each chunk with its own seed (from its id and the request's), marked when it is cached. Its
    audio is not loaded here: a resumed diary would hold all of it at once (RenderStream loads each
    cached chunk when its turn to play comes). With ``early_start`` the first chunk has its own cache
    key (:func:`~engine.rendering.caches.early_chunk_id`)."""
    chunks = [PlannedChunk(report, cache_id=report.id) for report in reports]
    if early_start and chunks:
        chunks[0].cache_id = early_chunk_id(chunks[0].report.id)
    for chunk in chunks:
        chunk.seed = int(chunk.report.id[:15], 16) ^ (seed & (2**62 - 1))
        if chunk_cache is not None and chunk_cache.contains(chunk.cache_id):
            chunk.cached = chunk.report.cached = True
    return chunks


HELD_BATCHES = 2  # a pool admits no new chunk while this many batches of finished audio wait for their turn


def pool_rows(finished: int, batch_size: int, held: int = 0) -> int:
    """Rows a render's pool (every chunk after the first) may decode at once: 2 until two chunks are
    done, then 4 until six are, then 8, ... up to ``batch_size``, as batches of 2, 4, 8 would, so that
    the first chunks after the opening one are ready before it has played; and one row while
    ``held`` chunks (done, waiting for an earlier one) fill ``HELD_BATCHES`` batches, so a slow chunk
    cannot make a render hold the audio of the whole diary."""
    if held >= HELD_BATCHES * batch_size:
        return 1
    return min(batch_size, 2 ** (finished + 2).bit_length() // 2)


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


def token_cap(chunk: PlannedChunk, models: Models, token_budget: Callable[[int], int] | None) -> int:
    """A chunk's cap on new tokens, from its phone count (or, for benchmarks, its budget plus one)."""
    if token_budget is None:
        return guards.token_cap(chunk.report.phones, 50 * models.max_sec)
    return token_budget(chunk.report.phones) + 1


def force_eos_after(budgets: list[int], eos: int) -> LogitsHook:
    """Benchmarks: make EOS the sure choice once a row has its budget of tokens (upstream's harness
    rule); ``budgets`` by request index may grow while the decode runs (a pool's chunks enter late)."""
    table: list[torch.Tensor] = []

    def hook(logits: torch.Tensor, items: torch.Tensor, sampled: torch.Tensor) -> None:
        if not table or len(table[0]) != len(budgets):
            table[:] = [torch.tensor(budgets, device=items.device)]
        done = table[0][items] <= sampled
        logits[:, eos] = torch.where(done, torch.full_like(logits[:, eos], 1e4), torch.full_like(logits[:, eos], -1e4))

    return hook
