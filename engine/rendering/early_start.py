"""Early start (``stream_pieces(early_start=True)``): the first chunk plays before its tokens are all
decoded; see :class:`EarlyStart`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from engine import audio
from engine.decoding import DecodeState

SAMPLE_RATE = audio.SAMPLE_RATE
SAMPLES_PER_TOKEN = 2 * audio.HOP  # one 25 Hz semantic token = two 50 Hz frames = 1280 samples
EARLY_HOLDBACK_TOKENS = 8  # the partial decode's last tokens lack right context (~6.5 for the vocoder)
EARLY_CROSSFADE = audio.HOP  # samples (20 ms) over which the early audio hands over to the exact rest
EARLY_VOCODER_MARGIN_S = 0.25  # time allowed for vocoding the rest's first window
EXPECTED_TOKENS_PER_PHONE = 2.5  # a guess of the chunk's length while it is being decoded


@dataclass
class EarlyStart:
    """Plays the first chunk before its semantic tokens are all decoded.

    After each decoding step: once the tokens so far, less a holdback, would play for longer than the
    rest is expected to take (steps timed as they run, the chunk's length guessed from its phones,
    plus a margin for the vocoder), they are vocoded on their own and played. The exact audio of the
    whole chunk takes over at that point with a short crossfade. The early part is an approximation
    (SoVITS saw only part of the chunk), which is why it is opt-in.

    The moment depends on the clock, so it is the one thing in a seeded render that is not
    reproducible: ``at_step`` replays a start decided before (after exactly that many tokens), which
    is how a job taken over by another worker makes the same bytes as its first attempt.
    """

    expected_tokens: int
    speed: float
    play: Callable[[torch.Tensor], Iterator[np.ndarray]]  # partial tokens -> their audio, window by window
    at_step: int | None = None  # replay: start after exactly this many tokens (None: when the clock says)
    played: np.ndarray | None = None  # what was played from the partial decode
    tail: np.ndarray | None = None  # the partial audio just after it, to crossfade from
    prefix: torch.Tensor | None = None  # the tokens it came from
    _clock: tuple[float, int] | None = None  # (time, step) of the first state seen

    @classmethod
    def for_chunk(cls, phones: int, speed: float, play: Callable[[torch.Tensor], Iterator[np.ndarray]],
                  at_step: int | None = None) -> EarlyStart:  # fmt: skip
        """An early start for a chunk of ``phones`` phones, its length guessed from them."""
        return cls(round(EXPECTED_TOKENS_PER_PHONE * phones), speed, play, at_step)

    @property
    def started(self) -> bool:
        return self.prefix is not None

    def due(self, state: DecodeState) -> bool:
        now, k = time.perf_counter(), state.sampled(0)
        if self.at_step is not None:
            return self.prefix is None and state.results[0] is None and k == self.at_step
        if self._clock is None:
            self._clock = (now, k)
            return False
        if self.prefix is not None or state.results[0] is not None or k <= EARLY_HOLDBACK_TOKENS + 2:
            return False
        per_step = (now - self._clock[0]) / max(1, k - self._clock[1])
        rest_s = max(0, self.expected_tokens - k) * per_step + EARLY_VOCODER_MARGIN_S
        return (k - EARLY_HOLDBACK_TOKENS) * SAMPLES_PER_TOKEN / SAMPLE_RATE / self.speed >= rest_s

    def start(self, tokens: torch.Tensor) -> Iterator[np.ndarray]:
        """Vocode ``tokens`` alone and yield the part to play now, window by window; keep the tail."""
        boundary = int((len(tokens) - EARLY_HOLDBACK_TOKENS) * SAMPLES_PER_TOKEN / self.speed) // audio.HOP * audio.HOP
        self.prefix, played, done = tokens, [], 0
        for part in self.play(tokens):
            now = part[: max(0, boundary - done)]
            if len(now):
                played.append(now)
                yield now
            if done + len(part) > boundary:
                self.tail = part[max(0, boundary - done) : boundary - done + EARLY_CROSSFADE]
                break
            done += len(part)
        self.played = np.concatenate(played) if played else np.zeros(0, np.float32)

    def hand_over(self, part: np.ndarray) -> np.ndarray:
        """The exact rest's first samples, crossfaded from the early audio's tail."""
        if self.tail is None or not len(part):
            return part
        n = min(len(self.tail), len(part))
        fade = np.linspace(0.0, 1.0, n, dtype=np.float32)
        part = part.copy()
        part[:n] = self.tail[:n] * (1.0 - fade) + part[:n] * fade
        self.tail = None
        return part
