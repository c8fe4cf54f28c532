"""Helpers for the enrollment tests: generated takes, noise at a known SNR, the espeak-ng speakers."""

from __future__ import annotations

import numpy as np
import pytest

from engine.enrollment import espeak
from engine.enrollment.quality import frame_powers
from engine.enrollment.vad import speech_probabilities

needs_espeak = pytest.mark.skipif(not espeak.available(), reason="espeak-ng is not installed (ops/setup installs it)")

SPEAKER, OTHER = "en-us+m3", "en-us+f2"  # two espeak voices the speaker model tells apart


def padded(samples: np.ndarray, rate: int, lead: float = 0.6, tail: float = 0.6) -> np.ndarray:
    """A take as a member records it: a little silence before and after the sentence."""
    return np.concatenate([np.zeros(int(lead * rate), np.float32), samples, np.zeros(int(tail * rate), np.float32)])


def with_noise(clean: np.ndarray, rate: int, snr_db: float, seed: int = 0) -> np.ndarray:
    """White noise added so that speech power (over the VAD's speech frames of ``clean``) / noise power = snr."""
    probs = speech_probabilities(clean, rate)
    speech_power = frame_powers(clean, rate, probs.size)[probs >= 0.5].mean()
    noise = np.random.default_rng(seed).standard_normal(clean.size)
    noise *= np.sqrt(speech_power / 10 ** (snr_db / 10) / np.mean(noise**2))
    return (clean + noise).astype(np.float32)
