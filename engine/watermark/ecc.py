"""Convolutional code with a soft-decision Viterbi decoder.

The mark's 80 message bits (48-bit payload + 32-bit MAC) are protected by a rate-1/4 code of
constraint length 9 (generators 463, 535, 733, 745 octal, free distance 24, from the published
tables of optimum-distance codes). Encoding ends with K-1 zero bits so the decoder knows the final
state. Soft inputs are log-likelihood-like values: positive means "1", magnitude means confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class ConvCode:
    generators: tuple[int, ...] = (0o463, 0o535, 0o733, 0o745)
    constraint: int = 9

    @property
    def rate_inverse(self) -> int:
        return len(self.generators)

    @property
    def n_states(self) -> int:
        return 1 << (self.constraint - 1)

    def coded_length(self, n_bits: int) -> int:
        return (n_bits + self.constraint - 1) * self.rate_inverse

    @cached_property
    def _outputs(self) -> np.ndarray:
        """(2 * n_states, rate_inverse) output bits for every register value (input bit at the MSB)."""
        regs = np.arange(1 << self.constraint)
        out = np.zeros((regs.size, self.rate_inverse), dtype=np.int8)
        for i, g in enumerate(self.generators):
            taps = regs & g
            parity = np.zeros_like(taps)
            while np.any(taps):
                parity ^= taps & 1
                taps >>= 1
            out[:, i] = parity
        return out

    def encode(self, bits: np.ndarray) -> np.ndarray:
        """Coded bits (0/1) for ``bits`` followed by the zero tail."""
        state = 0
        coded = []
        for u in np.concatenate([np.asarray(bits, dtype=np.int64), np.zeros(self.constraint - 1, np.int64)]):
            reg = (int(u) << (self.constraint - 1)) | state
            coded.append(self._outputs[reg])
            state = reg >> 1
        return np.concatenate(coded).astype(np.int8)

    def decode(self, soft: np.ndarray) -> np.ndarray:
        """Maximum-likelihood message bits for soft coded values (positive = 1)."""
        r = self.rate_inverse
        steps = soft.size // r
        n_msg = steps - (self.constraint - 1)
        if n_msg <= 0 or soft.size != steps * r:
            raise ValueError(f"soft input of length {soft.size} does not fit this code")
        # Branch metric of every register value at every step: correlation with the +-1 outputs.
        signs = 2.0 * self._outputs - 1.0  # (2S, r)
        metrics = soft.reshape(steps, r) @ signs.T  # (steps, 2S)
        n = self.n_states
        next_states = np.arange(n)
        # Register value that enters next state s from predecessor p: input bit = MSB of s.
        low = (next_states << 1) & (n - 1)
        reg0 = ((next_states >> (self.constraint - 2)) << (self.constraint - 1)) | low  # predecessor low | 0
        reg1 = reg0 | 1
        pred0, pred1 = low, low | 1
        score = np.full(n, -np.inf)
        score[0] = 0.0
        choice = np.zeros((steps, n), dtype=bool)
        for t in range(steps):
            a = score[pred0] + metrics[t, reg0]
            b = score[pred1] + metrics[t, reg1]
            choice[t] = b > a
            score = np.where(choice[t], b, a)
        state = 0  # the tail drives the encoder back to zero
        bits = np.zeros(steps, dtype=np.int8)
        for t in range(steps - 1, -1, -1):
            bits[t] = state >> (self.constraint - 2)
            state = ((state << 1) & (n - 1)) | int(choice[t, state])
        return bits[:n_msg]

    def free_distance(self, max_len: int = 64) -> int:
        """Smallest Hamming weight of a path that leaves state 0 and comes back (for tests)."""
        n = self.n_states
        weight = self._outputs.sum(axis=1)
        best = np.full(n, np.iinfo(np.int64).max // 2)
        first = 1 << (self.constraint - 1)  # input 1 from state 0
        best[first >> 1] = weight[first]
        answer = np.iinfo(np.int64).max
        for _ in range(max_len):
            new = np.full(n, np.iinfo(np.int64).max // 2)
            for u in (0, 1):
                regs = (u << (self.constraint - 1)) | np.arange(n)
                cand = best + weight[regs]
                nxt = regs >> 1
                np.minimum.at(new, nxt, cand)
            answer = min(answer, int(new[0]))
            new[0] = np.iinfo(np.int64).max // 2
            best = new
        return answer
