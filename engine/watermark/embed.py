"""Embed the keyed mark: small log-gains on the cells of the pattern, computed at 16 kHz.

The mark is made as a difference signal at the detection rate (it lives below 7 kHz), resampled
to the audio's own rate and added, so any output rate works and the rest of the spectrum is left
exactly as it was. Each cell's gain is the strength times the pattern sign, made larger in cells
well below the frame's loudest group (they are masked by it and cost little energy), capped.
"""

from __future__ import annotations

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
    x16 = resample(mono, sample_rate, params.rate)
    delta16 = mark_signal(x16, signs, params, params.strength)
    # Hold the mark's SNR near the target: voices whose spectra give the law less room get more
    # strength, within bounds, so quality and robustness depend less on the voice.
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
    delta = resample(delta16, params.rate, sample_rate)
    delta = np.pad(delta, (0, max(0, mono.size - delta.size)))[: mono.size]
    y = x + (delta if x.ndim == 1 else delta[:, None])
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > PEAK_CEILING:  # a plain gain: the mark is a pattern of relative levels, gain leaves it intact
        y *= PEAK_CEILING / peak
    return y.astype(np.asarray(audio).dtype if np.asarray(audio).dtype.kind == "f" else np.float32)


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
    window = np.sqrt(np.hanning(n + 1)[:-1])
    padded = np.concatenate([np.zeros(n), x16, np.zeros(2 * n)])
    frames = frames_of(padded, n, hop)
    if frames.shape[0] == 0:
        return np.zeros_like(x16)
    spec = np.fft.rfft(frames * window, axis=1)
    # every STFT frame takes the gains of the cell its centre falls in (cells start at sample 0)
    centres = np.arange(frames.shape[0]) * hop + n // 2 - n
    cell = centres // n
    inside = (cell >= 0) & (cell * n < x16.size)
    frame_signs = np.where(inside[:, None], signs[cell % params.block_frames], 0.0)
    band = slice(params.band_lo, params.band_hi)
    mag = np.abs(spec[:, band])
    loudest = mag.max(axis=1, keepdims=True)
    boost = np.minimum((loudest / np.maximum(mag, 1e-12)) ** params.masking_exponent, params.max_boost)
    gain = strength * boost * np.repeat(frame_signs, params.group, axis=1)
    delta_spec = np.zeros_like(spec)
    delta_spec[:, band] = spec[:, band] * np.expm1(gain)
    pieces = np.fft.irfft(delta_spec, n, axis=1) * window
    out = np.zeros(padded.size + n)
    for j in range(params.embed_hop_div):  # overlap-add, one hop-long slice of every frame at a time
        seg = pieces[:, j * hop:(j + 1) * hop].reshape(-1)
        out[j * hop:j * hop + seg.size] += seg
    out /= np.sum(window**2) / hop  # sqrt-Hann analysis x synthesis sums to this constant
    return out[n:n + x16.size]
