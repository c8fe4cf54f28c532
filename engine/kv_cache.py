"""The T2S decoder's key/value cache: every layer in one preallocated buffer, written in place.

Shared by the model (:mod:`engine.t2s`, whose attention writes to it) and the decoding loops
(:mod:`engine.decoding`, which allocate, grow and shrink it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.t2s_config import T2SConfig

CACHE_CHUNK = 256  # cache capacity grows in steps of at least this many positions


class KVCache:
    """Keys and values of every layer in one preallocated buffer
    ``kv`` [layers, 2 (k, v), rows, heads, capacity, head_dim], written in place, never concatenated.

    All rows share one write position (``length``). Rows whose prefix is shorter are left-padded: their
    first columns hold zeros, and ``pad_bias`` (additive, -inf there) keeps every query off them.
    """

    def __init__(self, kv: Tensor, pad_bias: Tensor | None = None, length: int = 0) -> None:
        self.kv = kv
        self.pad_bias = pad_bias  # [rows, 1, 1, capacity] or None when no row is padded
        self.length = length

    @classmethod
    def allocate(
        cls, config: T2SConfig, rows: int, capacity: int, device: torch.device, dtype: torch.dtype
    ) -> KVCache:
        shape = (config.num_layers, 2, rows, config.num_heads, capacity, config.head_dim)
        return cls(torch.empty(shape, device=device, dtype=dtype))

    @property
    def rows(self) -> int:
        return self.kv.shape[2]

    @property
    def capacity(self) -> int:
        return self.kv.shape[4]

    def append(self, layer: int, kv: Tensor) -> tuple[Tensor, Tensor]:
        """Store ``kv`` [2, rows, heads, T, head_dim] after the cached entries; return all keys, values."""
        end = self.length + kv.shape[3]
        self.kv[layer, :, :, :, self.length : end] = kv
        return self.kv[layer, 0, :, :, :end], self.kv[layer, 1, :, :, :end]

    def advance(self, steps: int) -> None:
        self.length += steps

    def row(self, index: int, offset: int) -> KVCache:
        """A view of one row whose columns start at ``offset``: writing to it fills this cache."""
        return KVCache(self.kv[:, :, index : index + 1, :, offset:])

    def pad_left(self, offsets: Sequence[int]) -> None:
        """Mark the first ``offsets[i]`` columns of row ``i`` as padding."""
        if not any(offsets):
            self.pad_bias = None
            return
        for row, offset in enumerate(offsets):
            # Masked keys still enter q.k: garbage NaN/inf there would survive the -inf bias.
            self.kv[:, :, row, :, :offset] = 0
        columns = torch.arange(self.capacity, device=self.kv.device)
        starts = torch.tensor(offsets, device=self.kv.device)[:, None]
        bias = torch.zeros(self.rows, self.capacity, device=self.kv.device, dtype=self.kv.dtype)
        self.pad_bias = bias.masked_fill_(columns[None, :] < starts, float("-inf"))[:, None, None, :]

    def step_mask(self) -> Tensor | None:
        """Additive mask for one new query per row (the new column is visible)."""
        return None if self.pad_bias is None else self.pad_bias[..., : self.length + 1]

    def reserve(self, length: int) -> None:
        """Make room for ``length`` columns; grows geometrically, copying only the used part."""
        if length <= self.capacity:
            return
        capacity = max(length, 2 * self.capacity, CACHE_CHUNK)
        shape = list(self.kv.shape)
        shape[4] = capacity
        grown = self.kv.new_empty(shape)
        grown[:, :, :, :, : self.length] = self.kv[:, :, :, :, : self.length]
        self.kv = grown
        if self.pad_bias is not None:
            self.pad_bias = F.pad(self.pad_bias, (0, capacity - self.pad_bias.shape[-1]))

    def keep(self, rows: Sequence[int]) -> None:
        """Keep only ``rows`` (ascending; order is preserved, as upstream's index_select).

        Kept rows slide down in place over the used columns only: no reallocation, and a row is
        copied only if a row before it left.
        """
        for new, old in enumerate(rows):
            if new != old:
                self.kv[:, :, new, :, : self.length] = self.kv[:, :, old, :, : self.length]
                if self.pad_bias is not None:
                    self.pad_bias[new] = self.pad_bias[old]
        self.kv = self.kv[:, :, : len(rows)]
        if self.pad_bias is not None:
            self.pad_bias = self.pad_bias[: len(rows)]
