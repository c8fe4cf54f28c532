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
MAX_SECONDS = 1800.0  # the mark repeats every 8 s: half an hour is plenty to look at
WINDOW_BLOCKS = 2  # windows of two blocks (16 s) every block (8 s) ...
FULL_CANDIDATES = 4  # ... after decoding this many alignments of the whole file
WINDOW_CANDIDATES = 2  # and this many of each window
WINDOW_CHUNK = 8
SPEED_RANGE, SPEED_STEP = 0.05, 0.002  # speed search: 0.95-1.05 (windows of 16 s tolerate +-0.1 %)
SPEED_SYNC_Z = 5.0
MAX_CANDIDATES = 256  # decodes per key: bounds the MAC false accepts by 6e-8 per key, whatever the input


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
    speed: float = 1.0  # playback speed at which the mark was found (speed search)

    @property
    def mark(self) -> int | None:
        """The 48-bit number the payload carries (a job's mark), only when its MAC checked."""
        return int.from_bytes(self.payload, "big") if (self.payload is not None and self.mac_ok) else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["payload"] = self.payload.hex() if self.payload is not None else None
        return d


@dataclass
class _Candidate:
    z: float
    phase: int
    offset: int


def detect(audio: np.ndarray, sample_rate: int, keys: Keyring | WatermarkKey | list[WatermarkKey],
           params: MarkParams = DEFAULT_PARAMS, *, speed_search: bool = False) -> Detection:
    """Look for a mark made with any of ``keys`` in ``audio`` (samples, or samples x channels).

    ``speed_search`` also tries playback speeds 0.95-1.05 (resampling, as after a speed change that
    shifts pitch and tempo together); it costs about 50 times the plain search.
    """
    key_list = _key_list(keys)
    x = np.asarray(audio, dtype=np.float64)
    mono = x if x.ndim == 1 else x.mean(axis=1)
    mono = mono[: int(MAX_SECONDS * sample_rate)]
    speeds = [1.0]
    if speed_search:
        steps = round(SPEED_RANGE / SPEED_STEP)
        speeds += [1 + k * SPEED_STEP for k in sorted(range(-steps, steps + 1), key=abs) if k]
    blocks = [_block_folds(resample(mono, sample_rate / s, params.rate), params) for s in speeds[:1]]
    n_windows = blocks[0].shape[1] - WINDOW_BLOCKS + 1 if blocks[0].shape[1] > 3 else 0
    tests = len(speeds) * len(key_list) * (1 + n_windows) * params.block_frames * params.phases
    mac_budget = len(key_list) * MAX_CANDIDATES * 2.0 ** (-8 * MAC_BYTES)  # decodes are capped per key
    z_threshold = math.sqrt(2 * math.log(tests / (FALSE_POSITIVE_RATE - mac_budget)))

    best: tuple[float, WatermarkKey | None, _Candidate | None, float] = (-math.inf, None, None, 1.0)
    budget = {key.id: MAX_CANDIDATES for key in key_list}
    for i, speed in enumerate(speeds):
        folds = blocks[0] if i == 0 else _block_folds(resample(mono, sample_rate / speed, params.rate), params)
        windows = folds.shape[1] - WINDOW_BLOCKS + 1 if folds.shape[1] > 3 else 0
        min_z = -math.inf if i == 0 else SPEED_SYNC_Z  # other speeds decode only clear pilot peaks
        for key in key_list:
            payload, z_max, cand = _search_key(folds, windows, keyed_pattern(key, params), key, params,
                                               budget, min_z)
            if payload is not None:
                return Detection(True, z_max, payload, True, key.id, min(1.0, mac_budget), z_threshold,
                                 _offset_s(cand, params) * speed, speed)
            if z_max > best[0]:
                best = (z_max, key, cand, speed)
    z, key, cand, speed = best
    z = z if math.isfinite(z) else 0.0
    present = z >= z_threshold
    return Detection(present, z, None, False, key.id if present and key else None,
                     min(1.0, mac_budget + tests * math.exp(-z * z / 2)), z_threshold,
                     _offset_s(cand, params) * speed if present and cand else None, speed if present else 1.0)


def _key_list(keys: Keyring | WatermarkKey | list[WatermarkKey]) -> list[WatermarkKey]:
    if isinstance(keys, Keyring):
        return keys.active
    if isinstance(keys, WatermarkKey):
        return [keys]
    return list(keys)


def _block_folds(y16: np.ndarray, params: MarkParams) -> np.ndarray:
    """(phases, blocks, block_frames, n_groups): cell values per block, frame t at index t mod block.

    Phase p reads frames starting at p * frame / phases + t * frame. Summing consecutive blocks folds
    any block-aligned segment onto one period.
    """
    n, tb = params.frame, params.block_frames
    hop = n // params.phases
    per_phase = [cell_values(y16[p * hop:], params, n).astype(np.float32) for p in range(params.phases)]
    n_frames = min(v.shape[0] for v in per_phase)
    n_blocks = max(1, -(-n_frames // tb))
    out = np.zeros((params.phases, n_blocks * tb, params.n_groups), dtype=np.float32)
    for p, v in enumerate(per_phase):
        out[p, :n_frames] = v[:n_frames]
    return out.reshape(params.phases, n_blocks, tb, params.n_groups)


def _pilot_z(folded: np.ndarray, pattern: Pattern) -> np.ndarray:
    """(..., block) Z of the pilots for every block offset, by circular correlation (FFT over time)."""
    pilot = pattern.pilot.astype(np.float64)
    a = np.fft.rfft(pattern.chip * pilot, axis=0)
    m = np.fft.rfft(pilot, axis=0)
    f = np.fft.rfft(folded, axis=-2)
    f2 = np.fft.rfft(folded.astype(np.float64) ** 2, axis=-2)
    n = folded.shape[-2]
    corr = np.fft.irfft((a * np.conj(f)).sum(axis=-1), n, axis=-1)
    energy = np.fft.irfft((m * np.conj(f2)).sum(axis=-1), n, axis=-1)
    return corr / np.sqrt(np.maximum(energy, 1e-9))


def _search_key(blocks: np.ndarray, n_windows: int, pattern: Pattern, key: WatermarkKey, params: MarkParams,
                budget: dict[str, int], min_z: float) -> tuple[bytes | None, float, _Candidate | None]:
    """Decode the best alignments of the whole input, then of each window; stop at a verified payload.

    ``budget[key.id]`` counts the decodes left for this key (it bounds the MAC's false accepts);
    candidates whose pilot Z is under ``min_z`` are not decoded.
    """
    full = blocks.sum(axis=1)
    z_full = _pilot_z(full, pattern)  # (phases, block)
    cands = [_Candidate(float(z_full[p, o]), p, o) for p, o in _top(z_full, FULL_CANDIDATES)]
    for cand in cands:
        if cand.z < min_z or budget[key.id] <= 0:
            break
        budget[key.id] -= 1
        if (payload := _decode(full[cand.phase], cand.offset, pattern, key, params)) is not None:
            return payload, float(z_full.max()), cand
    windowed: list[tuple[_Candidate, int]] = []
    for first in range(0, n_windows, WINDOW_CHUNK):  # a few windows at a time bounds the memory
        ws = range(first, min(n_windows, first + WINDOW_CHUNK))
        z_win = _pilot_z(np.stack([_window(blocks, w) for w in ws], axis=1), pattern)  # (phases, windows, block)
        for i, w in enumerate(ws):
            windowed += [(_Candidate(float(z_win[p, i, o]), p, o), w) for p, o in _top(z_win[:, i], WINDOW_CANDIDATES)]
    windowed.sort(key=lambda cw: cw[0].z, reverse=True)
    best = max([cands[0], *(c for c, _ in windowed[:1])], key=lambda c: c.z)
    for cand, w in windowed:
        if cand.z < min_z or budget[key.id] <= 0:
            break
        budget[key.id] -= 1
        if (payload := _decode(_window(blocks, w)[cand.phase], cand.offset, pattern, key, params)) is not None:
            return payload, best.z, cand
    return None, best.z, best


def _window(blocks: np.ndarray, w: int) -> np.ndarray:
    """(phases, block, groups): window ``w`` (blocks w .. w + WINDOW_BLOCKS - 1) folded onto one block."""
    return blocks[:, w:w + WINDOW_BLOCKS].sum(axis=1)


def _top(z: np.ndarray, k: int) -> list[tuple[int, int]]:
    """Indices (phase, offset) of the k largest entries of a (phases, block) array."""
    flat = np.argsort(z, axis=None)[::-1][:k]
    return [tuple(int(i) for i in np.unravel_index(f, z.shape)) for f in flat]


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
