"""Find the mark in any audio: resample, synchronise on the pilots, decode, check the MAC.

Presence. For an alignment, Z = sum(pilot_sign * v) / sqrt(sum(v^2)) over the pilot cells of the
audio folded onto one block (v: cell values summed over repetitions). Without this key's mark the
pilot signs are independent fair coins whatever the audio is, so P(Z >= z) <= exp(-z^2/2)
(Hoeffding), with no calibration. The detector tries every block offset, 8 sub-frame phases, the
whole file and overlapping windows (for cut or spliced files) and every active key; the threshold
is set by a union bound over all of them so that an unmarked file is called marked with probability
at most 1e-6.

Attribution. The best alignments are decoded (soft Viterbi) and a payload is returned only if its
32-bit MAC checks: a wrong payload passes with probability 2^-32 per decoded candidate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from engine.watermark.keys import Keyring, WatermarkKey
from engine.watermark.pattern import DEFAULT_PARAMS, MarkParams, Pattern, cell_values, keyed_pattern, resample
from engine.watermark.payload import MAC_BYTES, open_sealed

FALSE_POSITIVE_RATE = 1e-6  # per file, for the presence decision
WINDOW_BLOCKS = 2  # windows of two blocks (16 s) every block (8 s) ...
FULL_CANDIDATES = 4  # ... after decoding this many alignments of the whole file
WINDOW_CANDIDATES = 2  # and this many of each window
MAX_CANDIDATES = 256  # per key: bounds the MAC false-accept rate below 1e-7 even for hours of audio


@dataclass
class Detection:
    present: bool
    z: float
    payload: bytes | None
    mac_ok: bool
    key_id: str | None
    false_positive_bound: float
    z_threshold: float
    offset_s: float | None = None  # where a block starts, in seconds from the start of the input

    def to_dict(self) -> dict:
        d = asdict(self)
        d["payload"] = self.payload.hex() if self.payload is not None else None
        return d


@dataclass
class _Candidate:
    z: float
    phase: int
    offset: int
    start: int  # first frame of the segment (per phase)
    stop: int


def detect(audio: np.ndarray, sample_rate: int, keys: Keyring | WatermarkKey | list[WatermarkKey],
           params: MarkParams = DEFAULT_PARAMS) -> Detection:
    """Look for a mark made with any of ``keys`` in ``audio`` (samples, or samples x channels)."""
    key_list = _key_list(keys)
    x = np.asarray(audio, dtype=np.float64)
    mono = x if x.ndim == 1 else x.mean(axis=1)
    y16 = resample(mono, sample_rate, params.rate)
    hop = params.frame // params.phases
    values = cell_values(y16, params, hop)
    per_phase = [values[p::params.phases] for p in range(params.phases)]
    n_frames = min((v.shape[0] for v in per_phase), default=0)
    segments = _segments(n_frames, params)
    tests = len(key_list) * len(segments) * params.block_frames * params.phases
    mac_budget = len(key_list) * MAX_CANDIDATES * 2.0 ** (-8 * MAC_BYTES)
    alpha = FALSE_POSITIVE_RATE - mac_budget
    z_threshold = math.sqrt(2 * math.log(tests / alpha))

    best_z, best_key, best_cand = -math.inf, None, None
    for key in key_list:
        pattern = keyed_pattern(key, params)
        found, z_max, cand = _search_key(per_phase, segments, pattern, key, params)
        if z_max > best_z:
            best_z, best_key, best_cand = z_max, key, cand
        if found is not None:
            payload, cand = found
            return Detection(True, max(z_max, cand.z), payload, True, key.id,
                             min(1.0, mac_budget), z_threshold, _offset_s(cand, params))
    z = best_z if math.isfinite(best_z) else 0.0
    bound = min(1.0, mac_budget + tests * math.exp(-z * z / 2))
    present = z >= z_threshold
    return Detection(present, z, None, False, best_key.id if (present and best_key) else None, bound, z_threshold,
                     _offset_s(best_cand, params) if (present and best_cand) else None)


def _key_list(keys: Keyring | WatermarkKey | list[WatermarkKey]) -> list[WatermarkKey]:
    if isinstance(keys, Keyring):
        return keys.active
    if isinstance(keys, WatermarkKey):
        return [keys]
    return list(keys)


def _segments(n_frames: int, params: MarkParams) -> list[tuple[int, int]]:
    """The whole input first, then windows of two blocks every block (only for inputs longer than 3)."""
    tb = params.block_frames
    segments = [(0, n_frames)]
    if n_frames > 3 * tb:
        length = WINDOW_BLOCKS * tb
        segments += [(s, s + length) for s in range(0, n_frames - length + 1, tb)]
    return segments


def _fold(values: np.ndarray, start: int, stop: int, block: int) -> np.ndarray:
    """Sum the cell values of frames start..stop onto one block (index = frame mod block)."""
    part = values[start:stop]
    lead = start % block  # keep frame t at index t mod block whatever the segment's start
    tail = (-(lead + part.shape[0])) % block
    part = np.pad(part, ((lead, tail), (0, 0)))
    return part.reshape(-1, block, part.shape[1]).sum(axis=0)


def _pilot_z(folded: np.ndarray, pattern: Pattern) -> np.ndarray:
    """(phases, block) Z of the pilots for every block offset, by circular correlation (FFT over time)."""
    pilot = pattern.pilot.astype(np.float64)
    a = np.fft.rfft(pattern.chip * pilot, axis=0)
    m = np.fft.rfft(pilot, axis=0)
    f = np.fft.rfft(folded, axis=1)
    f2 = np.fft.rfft(folded**2, axis=1)
    n = folded.shape[1]
    corr = np.fft.irfft((a[None] * np.conj(f)).sum(axis=2), n, axis=1)
    energy = np.fft.irfft((m[None] * np.conj(f2)).sum(axis=2), n, axis=1)
    return corr / np.sqrt(np.maximum(energy, 1e-9))


def _search_key(per_phase: list[np.ndarray], segments: list[tuple[int, int]], pattern: Pattern,
                key: WatermarkKey, params: MarkParams) -> tuple[tuple[bytes, _Candidate] | None, float, _Candidate | None]:
    tb = params.block_frames
    z_max, z_best = -math.inf, None
    decoded = 0
    for index, (start, stop) in enumerate(segments):
        folded = np.stack([_fold(v, start, stop, tb) for v in per_phase])
        z = _pilot_z(folded, pattern)
        order = np.argsort(z, axis=None)[::-1]
        if z.size and z.flat[order[0]] > z_max:
            p, o = np.unravel_index(order[0], z.shape)
            z_max, z_best = float(z.flat[order[0]]), _Candidate(float(z.flat[order[0]]), int(p), int(o), start, stop)
        quota = FULL_CANDIDATES if index == 0 else WINDOW_CANDIDATES
        for flat in order[:quota]:
            if decoded >= MAX_CANDIDATES:
                return None, z_max, z_best
            p, o = np.unravel_index(flat, z.shape)
            decoded += 1
            payload = _decode(folded[p], int(o), pattern, key, params)
            if payload is not None:
                return (payload, _Candidate(float(z[p, o]), int(p), int(o), start, stop)), z_max, z_best
    return None, z_max, z_best


def _decode(folded: np.ndarray, offset: int, pattern: Pattern, key: WatermarkKey,
            params: MarkParams) -> bytes | None:
    """Soft values of the coded bits at one alignment, Viterbi, MAC check."""
    role = np.roll(pattern.role, -offset, axis=0)
    chip = np.roll(pattern.chip, -offset, axis=0)
    data = role >= 0
    soft = np.bincount(role[data], weights=(chip * folded)[data], minlength=params.n_coded)
    bits = params.code.decode(soft)
    return open_sealed(bits, key.mac_key)


def _offset_s(cand: _Candidate, params: MarkParams) -> float:
    """Start of a block in the input: frame t of the phase sits at block frame (t + offset) mod block."""
    hop = params.frame // params.phases
    first = (-cand.offset) % params.block_frames
    return (cand.phase * hop + first * params.frame) / params.rate
