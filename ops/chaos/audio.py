"""A voice clip for the chaos members' enrollment: voiced and syllable-rate modulated, not speech,
but enough for tiny random models (the suite studies the job system, not the voices)."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

SAMPLE_RATE = 32000


def voice_clip(seconds: float = 4.0, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(130 + 15 * seed + 20 * np.sin(np.pi * t)) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 10)) * (0.55 + 0.45 * np.sin(8 * np.pi * t))
    audio = (0.2 * voiced + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, audio, SAMPLE_RATE, format="WAV")
    return buf.getvalue()
