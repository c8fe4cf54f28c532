"""The mark's time-frequency layout, shared by the embedder and the detector.

Everything happens at a 16 kHz detection rate on a grid of 32 ms frames (512 samples) and 62.5 Hz
groups of two FFT bins between 312 Hz and 7 kHz: 107 groups a frame, 31.25 frames a second. Every
cell of a block of 256 frames (8.2 s, repeated through the file) carries a keyed sign and belongs
either to the pilots (known signs: synchronisation and the presence test) or to one coded bit; the
cells of a coded bit are scattered over the whole block, so any excerpt holds a share of every bit.

A cell's value is read as log-magnitude minus the mean of its two frequency neighbours (the host's
spectral envelope cancels), floored at 60 dB below the frame's loudest group, normalised by the
frame's RMS and clipped, so loud transients and silence weigh no more than ordinary speech.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soxr

from engine.watermark.ecc import ConvCode
from engine.watermark.keys import WatermarkKey
from engine.watermark.payload import MESSAGE_BITS


@dataclass(frozen=True)
class MarkParams:
    rate: int = 16000  # detection rate: every input is resampled here first
    frame: int = 512  # 32 ms cells
    band_lo: int = 10  # first FFT bin of the band (312.5 Hz)
    group: int = 2  # bins per cell
    n_groups: int = 107  # up to bin 224 (7 kHz)
    block_frames: int = 256  # 8.2 s period
    pilot_fraction: float = 0.2
    strength: float = 0.021  # log-gain of a cell as loud as its frame's loudest, ...
    target_snr_db: float = 29.5  # ... scaled (within strength_scale) so the mark sits this far down
    strength_scale: tuple[float, float] = (0.5, 2.0)
    masking_exponent: float = 0.7  # quieter cells get a larger relative gain, ...
    max_boost: float = 30.0  # ... at most this many times the strength
    embed_hop_div: int = 4  # embedding STFT hop = frame / 4, so cells cross-fade smoothly
    phases: int = 8  # sub-frame alignments tried by the detector
    floor_db: float = 60.0
    clip: float = 3.0
    code: ConvCode = ConvCode()

    @property
    def band_hi(self) -> int:
        return self.band_lo + self.group * self.n_groups

    @property
    def n_coded(self) -> int:
        return self.code.coded_length(MESSAGE_BITS)


DEFAULT_PARAMS = MarkParams()


@dataclass(frozen=True)
class Pattern:
    chip: np.ndarray  # (block_frames, n_groups) +-1
    role: np.ndarray  # (block_frames, n_groups): -1 pilot, else the coded bit the cell carries

    @property
    def pilot(self) -> np.ndarray:
        return self.role < 0


@lru_cache(maxsize=16)
def keyed_pattern(key: WatermarkKey, params: MarkParams = DEFAULT_PARAMS) -> Pattern:
    rng = np.random.Generator(np.random.PCG64(key.pattern_seed))
    shape = (params.block_frames, params.n_groups)
    cells = shape[0] * shape[1]
    chip = rng.integers(0, 2, cells).astype(np.float64) * 2 - 1
    order = rng.permutation(cells)
    n_pilot = int(round(params.pilot_fraction * cells))
    role = np.empty(cells, dtype=np.int64)
    role[order[:n_pilot]] = -1
    role[order[n_pilot:]] = np.arange(cells - n_pilot) % params.n_coded
    return Pattern(chip.reshape(shape), role.reshape(shape))


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return np.asarray(x, dtype=np.float64)
    return soxr.resample(np.asarray(x, dtype=np.float64), rate_in, rate_out, quality="HQ")


def frames_of(x: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """(n_frames, frame) strided view of full frames starting every ``hop`` samples."""
    if x.size < frame:
        return np.zeros((0, frame))
    return np.lib.stride_tricks.sliding_window_view(x, frame)[::hop]


def cell_values(y16: np.ndarray, params: MarkParams, hop: int, chunk: int = 4096) -> np.ndarray:
    """Normalised cell values (n_frames, n_groups) of frames starting every ``hop`` samples."""
    n, g, lo = params.frame, params.group, params.band_lo
    window = np.hanning(n + 1)[:-1]
    frames = frames_of(y16, n, hop)
    # one extra group on each side so the edge groups have two neighbours
    bins = slice(lo - g, params.band_hi + g)
    levels = np.empty((frames.shape[0], params.n_groups + 2))
    for start in range(0, frames.shape[0], chunk):
        spec = np.fft.rfft(frames[start:start + chunk] * window, axis=1)[:, bins]
        power = (spec.real**2 + spec.imag**2).reshape(spec.shape[0], -1, g).sum(axis=2)
        levels[start:start + chunk] = 0.5 * np.log(power + 1e-20)
    return normalise(levels, params)


def normalise(levels: np.ndarray, params: MarkParams) -> np.ndarray:
    if levels.shape[0] == 0:
        return np.zeros((0, params.n_groups))
    floor = params.floor_db / 20 * np.log(10)
    loudest = levels.max(axis=1, keepdims=True)
    levels = np.maximum(levels, loudest - floor)
    d = levels[:, 1:-1] - 0.5 * (levels[:, :-2] + levels[:, 2:])
    rms = np.sqrt(np.mean(d**2, axis=1, keepdims=True))
    active = (loudest > loudest.max() - floor) & (rms > 1e-6)
    d = np.where(active, d / np.maximum(rms, 1e-6), 0.0)
    return np.clip(d, -params.clip, params.clip)
