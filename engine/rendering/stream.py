"""One render as a pipeline that yields audio in text order as soon as it exists.

The first chunk alone (features, semantic tokens, relaying early audio if it starts early, then
vocoded), then every other chunk in one decoding pool (see
:func:`~engine.rendering.semantic.pooled_tokens`) that a chunk enters, its features computed, when a
row is free, and that hands each chunk over to be vocoded as soon as its tokens are done. The chunk
whose predecessors are all out is played window by window as it is vocoded, the others are held
until their turn. Cached chunks are loaded from the cache and played when their turn comes (one at a
time: a resumed diary never holds its cached audio all at once); one that left the cache since
the render was planned is rendered alone then.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import numpy as np
import torch

from engine import audio
from engine.errors import Cancelled
from engine.params import RenderParams
from engine.profile import VoiceProfile
from engine.rendering.caches import ChunkCache
from engine.rendering.early_start import SAMPLE_RATE, EarlyStart
from engine.rendering.planning import PausePoint, PlannedChunk, pool_rows
from engine.rendering.results import AudioPiece, Timings
from engine.rendering.semantic import pooled_tokens, semantic_tokens
from engine.rendering.synthesis import compute_features, timbre, vocode
from engine.runtime import Models

T = TypeVar("T")


@dataclass
class RenderStream:
    """The state of one render while it streams; :meth:`pieces` runs it."""

    models: Models
    profile: VoiceProfile
    params: RenderParams
    chunks: list[PlannedChunk]
    timings: Timings
    started_at: float  # when the request came in, for ``timings.first_audio_s``
    chunk_cache: ChunkCache | None = None
    should_cancel: Callable[[], bool] | None = None
    token_budget: Callable[[int], int] | None = None
    first_window_frames: int | None = None
    early_start: bool = False
    early_start_at: int | None = None  # replay an early start after this many tokens (EarlyStart.at_step; with early_start)
    pause_point: PausePoint | None = None  # see planning.PausePoint
    next_out: int = 0  # the first chunk not yet played
    _ge: torch.Tensor | None = field(default=None, init=False, repr=False)  # the voice's timbre, once computed

    def pieces(self) -> Iterator[AudioPiece]:
        """Every chunk's audio, in text order. A chunk keeps its features only until it is vocoded and
        its audio only until it is played, so memory is bounded by a batch, not by the diary."""
        todo = [c for c in self.chunks if not c.cached]
        self._ge = ge = timbre(self.models, self.profile)
        for part, decode in ((todo[:1], self._batch), (todo[1:], self._pool)):
            self._pause()
            self._check_cancel()
            yield from self._ready()  # cached chunks before these
            if part:
                yield from decode(part, todo, ge)

    def _pool(self, pool: list[PlannedChunk], todo: list[PlannedChunk], ge: torch.Tensor) -> Iterator[AudioPiece]:
        """Decode ``pool`` with every row kept busy; vocode each chunk as soon as its tokens are done."""
        prepare = partial(self._features, todo=todo)
        decoded = pooled_tokens(self.models, pool, prepare, self.profile, self.params, self.timings, self.token_budget,
                                self._pool_rows, self.pause_point)  # fmt: skip
        for chunk, codes in decoded:
            yield from self._finish(chunk, codes, ge, None)
            chunk.features, chunk.rendered = None, True  # its vocoding was their last use
            yield from self._ready()
            self._check_cancel()

    def _features(self, chunk: PlannedChunk, todo: list[PlannedChunk]) -> None:
        """The chunk's features, with the rest of its feature group, just before it enters the pool."""
        compute_features(self.models, [chunk], todo, self.params, self.timings)

    def _pool_rows(self, finished: int) -> int:
        """The pool's rows now (see :func:`~engine.rendering.planning.pool_rows`)."""
        held = sum(c.audio is not None for c in self.chunks[self.next_out :])
        return pool_rows(finished, self.params.batch_size, held)

    def _check_cancel(self) -> None:
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled("rendering was cancelled")

    def _batch(self, batch: list[PlannedChunk], todo: list[PlannedChunk], ge: torch.Tensor,
               play_ready: bool = True) -> Iterator[AudioPiece]:  # fmt: skip
        compute_features(self.models, batch, todo, self.params, self.timings)
        early = self._early_start(batch[0], ge)
        decoding = semantic_tokens(self.models, batch, self.profile, self.params, self.timings, self.token_budget,
                                   early, self.pause_point)  # fmt: skip
        tokens = yield from self._relay(batch[0], decoding, early)
        for chunk in batch:
            started = early if early is not None and early.started and chunk is batch[0] else None
            yield from self._finish(chunk, tokens[chunk.report.index], ge, started)
            chunk.features, chunk.rendered = None, True  # its vocoding was their last use
            if play_ready:
                yield from self._ready()

    def _early_start(self, head: PlannedChunk, ge: torch.Tensor) -> EarlyStart | None:
        """An early start for the render's first chunk, when asked for and ``head`` is it."""
        if not (self.early_start and self.next_out == 0 and head is self.chunks[0]):
            return None
        play = partial(vocode, self.models, chunk=head, params=self.params, ge=ge, timings=self.timings,
                       first_frames=self.first_window_frames)  # fmt: skip
        return EarlyStart.for_chunk(head.report.phones, self.params.speed_factor, play, self.early_start_at)

    def _relay(self, chunk: PlannedChunk, decoding: Generator[np.ndarray, None, T],
               early: EarlyStart | None) -> Generator[AudioPiece, None, T]:  # fmt: skip
        """Play the early audio, if any, until the tokens are all there; return them. The chunk's
        report says after how many tokens it started (before its first piece is out)."""
        while True:
            try:
                part = next(decoding)
            except StopIteration as finished:
                return finished.value
            if early is not None and early.prefix is not None:
                chunk.report.early_tokens = len(early.prefix)
            yield self._emit(chunk, part, False)

    def _finish(self, chunk: PlannedChunk, codes: torch.Tensor, ge: torch.Tensor,
                early: EarlyStart | None) -> Iterator[AudioPiece]:  # fmt: skip
        """Vocode ``chunk`` (after ``early``'s audio when it started early), keep its audio, cache it
        (an early-started one under its own key, see ``prepare_chunks``) and play it if its turn has come."""
        live = chunk is self.chunks[self.next_out]  # everything before it is out: play it as it is vocoded
        parts = yield from self._vocoded(chunk, codes, ge, early, live)
        gap = np.zeros(int(self.params.fragment_interval * SAMPLE_RATE), dtype=np.float32)
        whole = np.concatenate([*parts, gap])
        chunk.report.samples = len(whole)
        if self.chunk_cache is not None:
            self.chunk_cache.put(chunk.cache_id, whole)
        if live:
            self.next_out += 1
            yield self._emit(chunk, gap, True)
        else:
            chunk.audio = whole  # held until its turn (see _ready)

    def _vocoded(self, chunk: PlannedChunk, codes: torch.Tensor, ge: torch.Tensor, early: EarlyStart | None,
                 live: bool) -> Generator[AudioPiece, None, list[np.ndarray]]:  # fmt: skip
        """The chunk's audio parts, each played as it comes when ``live``; after an early start, the
        exact audio from where the early audio stopped, crossfaded into it."""
        first = self.first_window_frames if live and self.next_out == 0 else None
        parts = [early.played] if early is not None else []
        skip = len(early.played) // audio.HOP if early is not None else 0
        if early is not None and not torch.equal(codes[: len(early.prefix)], early.prefix):
            chunk.report.problems.append("early audio came from an attempt the guards rejected")
        for part in vocode(self.models, codes, chunk, self.params, ge, self.timings, first, skip):
            part = early.hand_over(part) if early is not None else part
            parts.append(part)
            if live:
                yield self._emit(chunk, part, False)
            self._pause()
        return parts

    def _pause(self) -> None:
        if self.pause_point is not None:
            self.pause_point()

    def _ready(self) -> Iterator[AudioPiece]:
        """Every chunk whose turn has come and whose audio is already there (or in the cache), whole."""
        while self.next_out < len(self.chunks):
            chunk = self.chunks[self.next_out]
            if chunk.audio is None and chunk.cached and not self._load(chunk):
                yield from self._batch([chunk], [chunk], self._ge, play_ready=False)  # plays it as it comes
                continue
            if chunk.audio is None:
                return
            whole, chunk.audio = chunk.audio, None  # played: a render holds no audio it has let out
            self.next_out += 1
            yield self._emit(chunk, whole, True)

    def _load(self, chunk: PlannedChunk) -> bool:
        """Load a cached chunk's audio now that its turn has come; False when it is no longer cached."""
        cached = self.chunk_cache.get(chunk.cache_id) if self.chunk_cache is not None else None
        chunk.cached = chunk.report.cached = cached is not None
        if cached is not None:
            chunk.audio, chunk.report.samples = cached, len(cached)
        return cached is not None

    def _emit(self, chunk: PlannedChunk, part: np.ndarray, last: bool) -> AudioPiece:
        if self.timings.first_audio_s is None:
            self.timings.first_audio_s = time.perf_counter() - self.started_at
        return AudioPiece(chunk.report, part, last, len(self.chunks))
