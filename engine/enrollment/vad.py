"""Voice-activity detection with silero-vad, its weights loaded from the PyPI package (no download).

Gives one speech probability per 32 ms frame (512 samples at 16 kHz) and speech segments from it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache

import numpy as np
import soxr
import torch

VAD_RATE = 16000
FRAME = 512  # samples per silero frame at 16 kHz
FRAME_SECONDS = FRAME / VAD_RATE


@cache
def _model() -> torch.nn.Module:
    from silero_vad import load_silero_vad  # the JIT file inside the package; never torch.hub

    with warnings.catch_warnings():  # torch 2.11 calls torch.jit.load deprecated; the package still uses it
        warnings.simplefilter("ignore", DeprecationWarning)
        return load_silero_vad()


@dataclass(frozen=True)
class Segment:
    """A stretch of audio in seconds."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def to_vad_rate(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    if sample_rate == VAD_RATE:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples, sample_rate, VAD_RATE).astype(np.float32)


@torch.inference_mode()
def speech_probabilities(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """One probability per 32 ms frame; frame i covers [i, i+1) * FRAME_SECONDS."""
    wav = to_vad_rate(samples, sample_rate)
    usable = wav.size // FRAME * FRAME
    if usable == 0:
        return np.zeros(0, dtype=np.float32)
    model = _model()
    model.reset_states()
    frames = torch.from_numpy(wav[:usable]).reshape(-1, FRAME)
    probs = torch.cat([model(frame[None], VAD_RATE).reshape(-1) for frame in frames])
    model.reset_states()
    return probs.numpy().astype(np.float32)


def speech_segments(
    probs: np.ndarray, threshold: float = 0.5, min_silence: float = 0.15, min_speech: float = 0.1
) -> list[Segment]:
    """Speech frames (prob >= threshold) joined across gaps shorter than ``min_silence``."""
    runs: list[list[int]] = []
    for i in np.flatnonzero(probs >= threshold):
        if runs and i - runs[-1][1] <= max(1, round(min_silence / FRAME_SECONDS)):
            runs[-1][1] = i + 1
        else:
            runs.append([int(i), int(i) + 1])
    segments = [Segment(a * FRAME_SECONDS, b * FRAME_SECONDS) for a, b in runs]
    return [s for s in segments if s.seconds >= min_speech]


def gaps_between(segments: list[Segment], total: float) -> list[Segment]:
    """Silences: before the first segment, between segments, after the last (possibly empty)."""
    edges = [0.0] + [x for s in segments for x in (s.start, s.end)] + [total]
    return [Segment(edges[i], max(edges[i], edges[i + 1])) for i in range(0, len(edges), 2)]
