"""The watermark embedder run piece by piece: the same cells as ``embed``, in absolute positions.

``embed`` marks a whole file: resample to 16 kHz, STFT (512-sample frames, hop 128, sqrt-Hann),
per-frame cell gains, overlap-add, resample back, add. Here each step keeps its state between
pieces: soxr streaming resamplers both ways, the frames not yet complete and the overlap-add sums
not yet final. Frame k covers 16 kHz samples [128k - 512, 128k) and takes the cell its centre
falls in, counted from the stream's first sample, so the grid does not depend on how the audio was
cut. A 16 kHz output sample is final once every frame over it is done: 512 samples (32 ms) of
look-ahead, plus the two resamplers' own delays. The strength is fixed when the marker is made
(``PieceExporter`` picks it from the lead, see ``adapted_strength``); nothing here depends on the
file's total power, and there is no peak normalisation (the limiter after the marker does that
job locally).
"""

from __future__ import annotations

import numpy as np
import soxr

from engine.watermark.embed import frame_deltas, ola_norm
from engine.watermark.pattern import DEFAULT_PARAMS, MarkParams

RESAMPLE_QUALITY = "HQ"  # as pattern.resample, which the whole-file embed uses


class StreamMarker:
    """``push`` host samples (n x channels) in, marked samples out (later, in order)."""

    def __init__(self, sample_rate: int, signs: np.ndarray, strength: float,
                 params: MarkParams = DEFAULT_PARAMS) -> None:
        self.sample_rate, self.signs, self.strength, self.params = sample_rate, signs, strength, params
        same = sample_rate == params.rate
        self._down = None if same else soxr.ResampleStream(sample_rate, params.rate, 1, dtype="float64",
                                                            quality=RESAMPLE_QUALITY)
        self._up = None if same else soxr.ResampleStream(params.rate, sample_rate, 1, dtype="float64",
                                                          quality=RESAMPLE_QUALITY)
        n = params.frame
        self._hop = n // params.embed_hop_div
        self._padded = np.zeros(n)  # the 16 kHz signal after n leading zeros, from frame self._frame on
        self._frame = 0
        self._sums = np.zeros(n)  # overlap-add sums from position self._frame * hop on (not final)
        self._skip = n  # positions of the leading zeros: not output
        self._len16 = 0
        self._out16 = 0
        self._host: np.ndarray | None = None  # host samples waiting for their mark
        self._delta = np.zeros(0)  # mark samples (host rate) waiting for their host samples

    def push(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] == 0:
            return x
        self._host = x if self._host is None else np.concatenate([self._host, x])
        x16 = self._resample(self._down, x.mean(axis=1), last=False)
        self._add_delta(self._resample(self._up, self._mark16(x16, final=False), last=False))
        return self._release()

    def finish(self) -> np.ndarray:
        if self._host is None:
            return np.zeros((0, 1))
        x16 = self._resample(self._down, np.zeros(0), last=True)
        delta16 = self._mark16(x16, final=True)
        self._add_delta(self._resample(self._up, delta16, last=True))
        owed = self._host.shape[0] - self._delta.size  # resampler rounding: pad or cut to the host's length
        self._delta = np.pad(self._delta, (0, max(0, owed)))[: self._host.shape[0]]
        return self._release()

    def _resample(self, stream: soxr.ResampleStream | None, x: np.ndarray, *, last: bool) -> np.ndarray:
        return x if stream is None else stream.resample_chunk(x, last=last)

    def _mark16(self, x16: np.ndarray, *, final: bool) -> np.ndarray:
        """The final 16 kHz mark samples that ``x16`` (the next 16 kHz samples) completes."""
        p, n, hop = self.params, self.params.frame, self._hop
        self._len16 += x16.size
        tail = [np.zeros(2 * n)] if final else []  # the whole-file STFT pads 2n zeros at the end
        self._padded = np.concatenate([self._padded, x16, *tail])
        count = (self._padded.size - n) // hop + 1 if self._padded.size >= n else 0
        out = np.zeros(count * hop + n)
        out[:n] += self._sums
        if count:
            frames = np.lib.stride_tricks.sliding_window_view(self._padded, n)[::hop][:count]
            pieces = frame_deltas(frames, self._frame, self._len16 if final else None, self.signs, p,
                                  self.strength)
            for j in range(p.embed_hop_div):  # overlap-add, as mark_signal does
                seg = pieces[:, j * hop:(j + 1) * hop].reshape(-1)
                out[j * hop:j * hop + seg.size] += seg
        done = out.size if final else count * hop
        ready, self._sums = out[:done], out[done:done + n] if not final else np.zeros(n)
        self._padded = self._padded[count * hop:]
        self._frame += count
        skip = min(self._skip, ready.size)
        self._skip -= skip
        ready = ready[skip:] / ola_norm(p)
        if final:  # only the signal's own length is output, as mark_signal does
            ready = ready[: self._len16 - self._out16]
        self._out16 += ready.size
        return ready

    def _add_delta(self, delta: np.ndarray) -> None:
        self._delta = np.concatenate([self._delta, delta])

    def _release(self) -> np.ndarray:
        count = min(self._host.shape[0], self._delta.size)
        out = self._host[:count] + self._delta[:count, None]
        self._host, self._delta = self._host[count:], self._delta[count:]
        return out
