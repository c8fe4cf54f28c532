"""What a render reports: per-chunk reports, audio pieces and chunks, timings, the whole result."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ChunkReport:
    index: int
    id: str
    text: str
    phones: int = 0
    tokens: int = 0
    cached: bool = False
    retries: int = 0
    problems: list[str] = field(default_factory=list)  # what each flawed attempt looked like
    samples: int = 0
    semantic: list[int] = field(default_factory=list)  # the kept semantic tokens (empty when cached)
    early_tokens: int | None = None  # an early start's token count (see EarlyStart.at_step), when it started early


@dataclass
class RenderedChunk:
    report: ChunkReport
    audio: np.ndarray  # float32 at 32 kHz, including the fragment silence after it
    total: int  # chunks in the whole render


@dataclass
class AudioPiece:
    """A stretch of one chunk's audio, in text order: the first chunk comes window by window (so playback
    starts before it is fully vocoded), a later one whole; ``last`` marks a chunk's final piece."""

    report: ChunkReport
    audio: np.ndarray  # float32 at 32 kHz; a chunk's last piece includes its fragment silence
    last: bool
    total: int  # chunks in the whole render


@dataclass
class Timings:
    frontend_s: float = 0.0
    bert_s: float = 0.0
    t2s_s: float = 0.0
    sovits_s: float = 0.0
    first_audio_s: float | None = None
    total_s: float = 0.0
    t2s_tokens: int = 0


@dataclass
class RenderResult:
    audio: np.ndarray  # float32 mono at sample_rate
    sample_rate: int
    chunks: list[ChunkReport]
    timings: Timings
    seed: int

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate

    @property
    def synthesised(self) -> int:
        return sum(not c.cached for c in self.chunks)

    @property
    def retried(self) -> list[ChunkReport]:
        return [c for c in self.chunks if c.retries]
