"""Bounded decoding of an uploaded take: size, then header facts, then samples.

Upload bytes are never trusted: the size is checked before anything reads them, the container header
(frames, rate, channels) before any sample is decoded, and nothing is unpickled.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds checked before decoding (the service fills them from settings)."""

    max_bytes: int = 64 * 1024 * 1024
    max_seconds: float = 180.0
    max_channels: int = 2
    min_sample_rate: int = 8000
    max_sample_rate: int = 192000


class UndecodableTake(ValueError):
    """The bytes are not a take we can read; ``gate`` names the failed check, ``value`` what was found."""

    def __init__(self, gate: str, value: object, detail: str) -> None:
        super().__init__(detail)
        self.gate, self.value = gate, value


@dataclass(frozen=True)
class DecodedTake:
    """Mono float32 samples in [-1, 1] at the file's own rate, plus what the header said."""

    samples: np.ndarray
    sample_rate: int
    channels: int
    format: str

    @property
    def seconds(self) -> float:
        return self.samples.size / self.sample_rate


def decode_take(data: bytes, limits: DecodeLimits | None = None) -> DecodedTake:
    """Decode WAV/FLAC/OGG/MP3 bytes (libsndfile) within ``limits``; raise :class:`UndecodableTake`."""
    limits = limits or DecodeLimits()
    if not data:
        raise UndecodableTake("format", 0, "the file is empty")
    if len(data) > limits.max_bytes:
        raise UndecodableTake("size", len(data), f"the file is {len(data)} bytes; at most {limits.max_bytes}")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            _check_header(f, limits)
            cap = int(limits.max_seconds * f.samplerate) + 1  # a header may not know its length: bound the read
            samples = f.read(frames=cap, dtype="float32", always_2d=True)
            fmt, rate, channels = f.format, f.samplerate, f.channels
    except sf.LibsndfileError as e:
        reason = str(e).rsplit(": ", 1)[-1].strip(" .").lower() or "unknown format"
        raise UndecodableTake("format", None, f"not a readable audio file: {reason}") from None
    if len(samples) >= int(limits.max_seconds * rate) + 1:
        raise UndecodableTake("duration", len(samples) / rate, f"longer than {limits.max_seconds:.0f} s")
    if len(samples) == 0:
        raise UndecodableTake("format", 0, "the file holds no audio samples")
    mono = samples.mean(axis=1) if channels > 1 else samples[:, 0]
    return DecodedTake(np.ascontiguousarray(mono, dtype=np.float32), rate, channels, fmt)


def _check_header(f: sf.SoundFile, limits: DecodeLimits) -> None:
    if f.channels > limits.max_channels:
        raise UndecodableTake("channels", f.channels, f"{f.channels} channels; at most {limits.max_channels}")
    if not limits.min_sample_rate <= f.samplerate <= limits.max_sample_rate:
        raise UndecodableTake("sample_rate", f.samplerate, f"sample rate {f.samplerate} Hz is out of range")
    seconds = f.frames / f.samplerate if 0 < f.frames < 2**62 else None
    if seconds is not None and seconds > limits.max_seconds:
        raise UndecodableTake("duration", seconds, f"{seconds:.0f} s long; at most {limits.max_seconds:.0f} s")
