"""Generated speech with espeak-ng, for tests, calibration and benchmarks (not used by the product).

Mandarin uses ``cmn-latn-pinyin``: Debian's ``-v cmn`` reads the pinyin tone digits as English numbers.
"""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import soundfile as sf

ZH_VOICE, EN_VOICE = "cmn-latn-pinyin", "en-us"
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4")


def available() -> bool:
    return shutil.which("espeak-ng") is not None


def voice_for(language: str, variant: str | None = None) -> str:
    base = EN_VOICE if language == "en" else ZH_VOICE
    return f"{base}+{variant}" if variant else base


def say(text: str, voice: str, speed: int | None = None, pitch: int | None = None) -> tuple[np.ndarray, int]:
    """espeak-ng reading ``text`` with ``voice`` (e.g. "en-us+f3") -> (float32 mono, 22050)."""
    cmd = ["espeak-ng", "-v", voice, "--stdout"]
    if speed:
        cmd += ["-s", str(speed)]
    if pitch is not None:
        cmd += ["-p", str(pitch)]
    wav = subprocess.run([*cmd, text], check=True, capture_output=True, timeout=60).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    return samples, rate


def wav_bytes(samples: np.ndarray, rate: int, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt)
    return buf.getvalue()


def read_with_pauses(
    sentences: list[str] | tuple[str, ...], voice: str, lead: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, int, list[tuple[float, float]]]:
    """One long take of ``sentences`` with 0.3-0.8 s pauses; also each sentence's (start, end) in seconds."""
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = []
    spans: list[tuple[float, float]] = []
    rate, t = 22050, lead
    parts.append(np.zeros(int(lead * rate), np.float32))
    for text in sentences:
        samples, rate = say(text, voice)
        voiced = np.flatnonzero(np.abs(samples) > 1e-3)  # espeak pads its own output with silence
        spans.append((t + voiced[0] / rate, t + (voiced[-1] + 1) / rate))
        parts.append(samples)
        pause = int(rng.uniform(0.3, 0.8) * rate)
        parts.append(np.zeros(pause, np.float32))
        t += (samples.size + pause) / rate
    return np.concatenate(parts), rate, spans
