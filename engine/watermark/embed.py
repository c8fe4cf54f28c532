"""Embed the keyed mark: small log-gains on the cells of the pattern, computed at 16 kHz.

The mark is made as a difference signal at the detection rate (it lives below 7 kHz), resampled
to the audio's own rate and added, so any output rate works and the rest of the spectrum is left
exactly as it was. Each cell's gain is the strength times the pattern sign, made larger in cells
well below the frame's loudest group (they are masked by it and cost little energy), capped.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from engine.watermark.keys import WatermarkKey
from engine.watermark.pattern import DEFAULT_PARAMS, MarkParams, frames_of, keyed_pattern, resample
from engine.watermark.payload import seal

PEAK_CEILING = 0.999


def embed(audio: np.ndarray, sample_rate: int, key: WatermarkKey, payload: bytes,
          params: MarkParams = DEFAULT_PARAMS) -> np.ndarray:
    """``audio`` (samples, or samples x channels) with the mark of ``payload`` under ``key``."""
    x = np.asarray(audio, dtype=np.float64)
    mono = x if x.ndim == 1 else x.mean(axis=1)
    signs = cell_signs(key, payload, params)
    _, delta16 = adapted_strength(mono, sample_rate, signs, params)
    delta = resample(delta16, params.rate, sample_rate)
    delta = np.pad(delta, (0, max(0, mono.size - delta.size)))[: mono.size]
    y = x + (delta if x.ndim == 1 else delta[:, None])
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > PEAK_CEILING:  # a plain gain: the mark is a pattern of relative levels, gain leaves it intact
        y *= PEAK_CEILING / peak
    return y.astype(np.asarray(audio).dtype if np.asarray(audio).dtype.kind == "f" else np.float32)


def adapted_strength(mono: np.ndarray, sample_rate: int, signs: np.ndarray,
                     params: MarkParams = DEFAULT_PARAMS) -> tuple[float, np.ndarray]:
    """The strength that puts the mark ``params.target_snr_db`` under ``mono``, and that mark (16 kHz).

    Voices whose spectra give the law less room get more strength, within bounds, so quality and
    robustness depend less on the voice.
    """
    x16 = resample(mono, sample_rate, params.rate)
    delta16 = mark_signal(x16, signs, params, params.strength)
    power = float(np.mean(mono**2)) if mono.size else 0.0
    lo, hi = (params.strength * s for s in params.strength_scale)
    strength = params.strength
    for _ in range(2):  # the law is slightly super-linear in strength: two corrections suffice
        mark_power = float(np.mean(delta16**2)) if delta16.size else 0.0
        if power <= 0 or mark_power <= 0:
            break
        snr = 10 * np.log10(power / mark_power)
        new = float(np.clip(strength * 10 ** ((snr - params.target_snr_db) / 20), lo, hi))
        if abs(new / strength - 1) < 0.02:
            break
        strength = new
        delta16 = mark_signal(x16, signs, params, strength)
    return strength, delta16


def cell_signs(key: WatermarkKey, payload: bytes, params: MarkParams = DEFAULT_PARAMS) -> np.ndarray:
    """(block_frames, n_groups) +-1: pilot signs, and coded bits times the keyed chips."""
    pattern = keyed_pattern(key, params)
    coded = params.code.encode(seal(payload, key.mac_key))
    bit_sign = np.where(pattern.role >= 0, 2.0 * coded[np.maximum(pattern.role, 0)] - 1, 1.0)
    return pattern.chip * bit_sign


def mark_signal(x16: np.ndarray, signs: np.ndarray, params: MarkParams, strength: float) -> np.ndarray:
    """The difference signal (16 kHz) that applies the cell gains to ``x16``."""
    n = params.frame
    hop = n // params.embed_hop_div
    padded = np.concatenate([np.zeros(n), x16, np.zeros(2 * n)])
    frames = frames_of(padded, n, hop)
    if frames.shape[0] == 0:
        return np.zeros_like(x16)
    pieces = frame_deltas(frames, 0, x16.size, signs, params, strength)
    out = np.zeros(padded.size + n)
    for j in range(params.embed_hop_div):  # overlap-add, one hop-long slice of every frame at a time
        seg = pieces[:, j * hop:(j + 1) * hop].reshape(-1)
        out[j * hop:j * hop + seg.size] += seg
    out /= ola_norm(params)
    return out[n:n + x16.size]


def frame_deltas(frames: np.ndarray, first: int, length: int | None, signs: np.ndarray, params: MarkParams,
                 strength: float) -> np.ndarray:
    """Windowed mark frames for STFT frames ``first``, ``first + 1``, ... of the zero-led 16 kHz signal.

    Frame k starts k hops after n leading zeros; it takes the gains of the cell its centre falls in
    (cells start at the signal's sample 0). ``length`` is the signal's length when known: frames
    centred past its end get no mark (None: every frame given lies inside).
    """
    n = params.frame
    hop = n // params.embed_hop_div
    window = sqrt_hann(n)
    spec = np.fft.rfft(frames * window, axis=1)
    centres = (first + np.arange(frames.shape[0])) * hop + n // 2 - n
    cell = centres // n
    inside = (cell >= 0) & (True if length is None else cell * n < length)
    frame_signs = np.where(inside[:, None], signs[cell % params.block_frames], 0.0)
    band = slice(params.band_lo, params.band_hi)
    mag = np.abs(spec[:, band])
    loudest = mag.max(axis=1, keepdims=True)
    boost = np.minimum((loudest / np.maximum(mag, 1e-12)) ** params.masking_exponent, params.max_boost)
    gain = strength * boost * np.repeat(frame_signs, params.group, axis=1)
    delta_spec = np.zeros_like(spec)
    delta_spec[:, band] = spec[:, band] * np.expm1(gain)
    return np.fft.irfft(delta_spec, n, axis=1) * window


def ola_norm(params: MarkParams) -> float:
    """What sqrt-Hann analysis x synthesis windows sum to at hop frame / embed_hop_div."""
    n = params.frame
    return float(np.sum(sqrt_hann(n) ** 2) / (n // params.embed_hop_div))


@lru_cache(maxsize=4)
def sqrt_hann(n: int) -> np.ndarray:
    window = np.sqrt(np.hanning(n + 1)[:-1])
    window.flags.writeable = False
    return window
