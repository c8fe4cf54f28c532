"""The T2S decoder's key/value cache: every layer in one preallocated buffer, written in place.

Shared by the model (:mod:`engine.t2s`, whose attention writes to it) and the decoding loops
(:mod:`engine.decoding`, which allocate, grow and shrink it, and refill it with new rows).
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
    first columns (before ``starts[row]``) hold zeros, and ``pad_bias`` (additive, -inf there) keeps
    every query off them. ``kv`` is a view of the first ``rows`` rows of the allocated ones, so rows
    can leave (:meth:`keep`) and enter (:meth:`add_row`) without reallocating.
    """

    def __init__(self, kv: Tensor, pad_bias: Tensor | None = None, length: int = 0) -> None:
        self._kv = kv  # every allocated row
        self._bias = pad_bias
        self.kv = kv
        self.pad_bias = pad_bias  # [rows, 1, 1, capacity] or None when no row is padded
        self.length = length
        self.starts = [0] * kv.shape[2]  # first column of each row that is not padding

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
        self.starts = list(offsets)
        if not any(offsets):
            self.pad_bias = self._bias = None
            return
        for row, offset in enumerate(offsets):
            # Masked keys still enter q.k: garbage NaN/inf there would survive the -inf bias.
            self.kv[:, :, row, :, :offset] = 0
        columns = torch.arange(self.capacity, device=self.kv.device)
        starts = torch.tensor(offsets, device=self.kv.device)[:, None]
        bias = torch.zeros(self._kv.shape[2], self.capacity, device=self.kv.device, dtype=self.kv.dtype)
        bias[: self.rows].masked_fill_(columns[None, :] < starts, float("-inf"))
        self._bias = bias[:, None, None, :]
        self.pad_bias = self._bias[: self.rows]

    def step_mask(self) -> Tensor | None:
        """Additive mask for one new query per row (the new column is visible)."""
        return None if self.pad_bias is None else self.pad_bias[..., : self.length + 1]

    def reserve(self, length: int) -> None:
        """Make room for ``length`` columns; grows geometrically, copying only the used part."""
        if length <= self.capacity:
            return
        capacity = max(length, 2 * self.capacity, CACHE_CHUNK)
        shape = list(self._kv.shape)
        shape[4] = capacity
        grown = self._kv.new_empty(shape)
        grown[:, :, : self.rows, :, : self.length] = self.kv[:, :, :, :, : self.length]
        self._kv, self.kv = grown, grown[:, :, : self.rows]
        if self._bias is not None:
            self._bias = F.pad(self._bias, (0, capacity - self._bias.shape[-1]))
            self.pad_bias = self._bias[: self.rows]

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
        self.starts = [self.starts[old] for old in rows]
        self._view(len(rows))

    def add_row(self, prefix: int) -> KVCache:
        """Make room for one more row whose ``prefix`` columns end at ``length`` (after the rows
        there are) and return the view its prefill writes to. A prefix longer than ``length`` moves
        every row right first; there must be an allocated row free."""
        if self.rows == self._kv.shape[2]:
            raise ValueError(f"all {self.rows} allocated rows are in use")
        if self.rows == 0:  # nothing cached: start afresh, without padding
            self.length, self._bias, self.pad_bias = 0, None, None
            self.reserve(prefix + 1)
            self.length = prefix
        elif prefix > self.length:
            self._shift(prefix - self.length)
        row, start = self.rows, self.length - prefix
        self._view(row + 1)
        self.kv[:, :, row, :, :start] = 0  # finite: masked keys still enter q.k (see pad_left)
        self.starts.append(start)
        if start or self._bias is not None:
            self._padding_bias()[row].fill_(0)[..., :start] = float("-inf")
        return self.row(row, start)

    def compact(self, slack: int = CACHE_CHUNK) -> None:
        """Drop the leading columns that are padding for every row once they are more than ``slack``,
        so attention over a long refilled pool costs what its longest live row needs."""
        waste = min(self.starts, default=0)
        if waste <= slack:
            return
        self._shift(-waste)

    def _shift(self, by: int) -> None:
        """Move every row's used columns right (``by`` > 0: padding in front) or left (< 0: drop them)."""
        self.reserve(self.length + max(by, 0) + 1)
        length = self.length + by
        self._move(max(-by, 0), max(by, 0), min(self.length, length))
        if by > 0:
            self.kv[:, :, :, :, :by] = 0
        self.starts = [s + by for s in self.starts]
        self.length = length
        if self.pad_bias is not None or by > 0:
            bias = self._padding_bias()
            columns = torch.arange(self.capacity, device=bias.device)
            starts = torch.tensor(self.starts, device=bias.device, dtype=torch.long)[:, None]
            bias[: self.rows, 0, 0] = torch.where(columns[None, :] < starts, float("-inf"), 0.0).to(bias.dtype)

    def _move(self, source: int, target: int, columns: int) -> None:
        """Copy ``columns`` columns of every row from ``source`` to ``target`` in place, in blocks
        that never overlap the columns they are copied to (no copy of the whole cache)."""
        block = abs(target - source)
        order = range(0, columns, block) if target < source else reversed(range(0, columns, block))
        for i in order:
            n = min(block, columns - i)
            self.kv[:, :, :, :, target + i : target + i + n] = self.kv[:, :, :, :, source + i : source + i + n]

    def _padding_bias(self) -> Tensor:
        """The bias of every allocated row, made (all visible) if there was none."""
        if self._bias is None:
            self._bias = self._kv.new_zeros(self._kv.shape[2], 1, 1, self.capacity)
        self.pad_bias = self._bias[: self.rows]
        return self._bias

    def _view(self, rows: int) -> None:
        self.kv = self._kv[:, :, :rows]
        if self._bias is not None:
            self.pad_bias = self._bias[:rows]
