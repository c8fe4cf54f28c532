"""A look-ahead peak limiter that runs piece by piece.

The gain needed at a sample is ``min(1, ceiling / |x|)``; the applied gain is a moving average of a
moving minimum of it, both ``2w + 1`` samples wide (w = 5 ms), so it dips smoothly over a few ms
around a peak and never exceeds what any sample needs (the average of values that are each <= the
need at the centre is <= it; a final ``min`` keeps it exact under rounding). An output sample needs
the need of the 2w samples after it: the look-ahead (10 ms at any rate). The stream's edges repeat
the first and last need ("nearest"), as scipy's whole-array filters do.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d

WINDOW_S = 0.005


class StreamLimiter:
    """``push`` samples (n x channels) in, limited samples out, delayed by ``lookahead`` samples."""

    def __init__(self, sample_rate: int, ceiling: float, window_s: float = WINDOW_S) -> None:
        self.ceiling = ceiling
        self.w = max(1, int(window_s * sample_rate))
        self.lookahead = 2 * self.w
        self._pending: np.ndarray | None = None  # samples not yet output
        self._need = np.zeros(0)  # needs of the 2w samples before the pending ones, then of the pending

    def push(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] == 0:
            return x
        need = self._needs(x)
        if self._pending is None:  # the stream's start: repeat the first need
            self._pending, self._need = x[:0], np.full(self.lookahead, need[0])
        self._pending = np.concatenate([self._pending, x])
        self._need = np.concatenate([self._need, need])
        return self._release(self._pending.shape[0] - self.lookahead)

    def finish(self) -> np.ndarray:
        if self._pending is None or self._pending.shape[0] == 0:
            return np.zeros((0, 1)) if self._pending is None else self._pending
        self._need = np.concatenate([self._need, np.full(self.lookahead, self._need[-1])])
        return self._release(self._pending.shape[0])

    def _needs(self, x: np.ndarray) -> np.ndarray:
        level = np.abs(x).max(axis=1)
        return np.minimum(1.0, self.ceiling / np.maximum(level, 1e-12))

    def _release(self, count: int) -> np.ndarray:
        """Output the first ``count`` pending samples; their needs and 2w on each side are known."""
        if count <= 0:
            return self._pending[:0]
        width, la = 2 * self.w + 1, self.lookahead
        window = self._need[: count + 2 * la]
        own = window[la:la + count]
        if window.min() >= 1.0:  # nothing near a peak: the samples pass unchanged
            gain = None
        else:
            smooth = uniform_filter1d(minimum_filter1d(window, width, mode="nearest"), width, mode="nearest")
            gain = np.minimum(smooth[la:la + count], own)
        out, self._pending = self._pending[:count], self._pending[count:]
        self._need = self._need[count:]
        return out if gain is None else out * gain[:, None]
