"""``ref_enc``: a reference spectrogram -> one timbre vector (MelStyleEncoder).

Linear+Mish layers over frequency, two gated convolutions over time, self-attention, a projection
to ``gin`` channels and a masked mean over time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LinearNorm(nn.Module):
    """A Linear layer under the name ``fc`` (upstream's key layout)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x)


class ConvNorm(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Mish(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.tanh(F.softplus(x))


class Conv1dGLU(nn.Module):
    """Conv to 2C channels, gated linear unit back to C, residual add."""

    def __init__(self, channels: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        self.channels = channels
        self.conv1 = ConvNorm(channels, 2 * channels, kernel_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        a, gate = torch.split(self.conv1(x), self.channels, dim=1)
        return x + self.dropout(a * torch.sigmoid(gate))


class StyleAttention(nn.Module):
    """Self-attention with a residual add; the softmax temperature is sqrt(model width), as upstream."""

    def __init__(self, n_heads: int, width: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = width // n_heads
        self.temperature = math.sqrt(width)
        self.w_qs = nn.Linear(width, width)
        self.w_ks = nn.Linear(width, width)
        self.w_vs = nn.Linear(width, width)
        self.fc = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, pad: Tensor | None) -> Tensor:
        """x [B, T, C]; pad [B, T] True on padded frames (or None)."""
        b, t, c = x.shape
        q, k, v = (w(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2) for w in (self.w_qs, self.w_ks, self.w_vs))
        scores = (q @ k.transpose(-2, -1)) / self.temperature
        if pad is not None:
            scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
        p_attn = self.dropout(F.softmax(scores, dim=-1))
        out = (p_attn @ v).transpose(1, 2).reshape(b, t, c)
        return self.dropout(self.fc(out)) + x


class MelStyleEncoder(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden: int = 128, kernel_size: int = 5, n_heads: int = 2,
                 dropout: float = 0.1) -> None:  # fmt: skip
        super().__init__()
        # Indices 0 and 3 carry weights (Mish and Dropout between), as upstream's nn.Sequential.
        self.spectral = nn.Sequential(
            LinearNorm(in_dim, hidden), Mish(), nn.Dropout(dropout),
            LinearNorm(hidden, hidden), Mish(), nn.Dropout(dropout),
        )  # fmt: skip
        self.temporal = nn.Sequential(Conv1dGLU(hidden, kernel_size, dropout), Conv1dGLU(hidden, kernel_size, dropout))
        self.slf_attn = StyleAttention(n_heads, hidden, dropout)
        self.fc = LinearNorm(hidden, out_dim)

    def forward(self, spec: Tensor, mask: Tensor | None = None) -> Tensor:
        """spec [B, in_dim, T], mask [B, 1, T] (1 = valid) or None -> [B, out_dim, 1]."""
        pad = None if mask is None else (mask.squeeze(1) == 0)
        x = self.spectral(spec.transpose(1, 2))
        x = self.temporal(x.transpose(1, 2)).transpose(1, 2)
        if pad is not None:
            x = x.masked_fill(pad.unsqueeze(-1), 0)
        x = self.fc(self.slf_attn(x, pad))
        return self._average(x, pad).unsqueeze(-1)

    @staticmethod
    def _average(x: Tensor, pad: Tensor | None) -> Tensor:
        """Mean over valid frames of [B, T, C]; divide first, then sum, in float32 (as upstream)."""
        if pad is None:
            lengths = torch.full((x.shape[0], 1, 1), x.shape[1], dtype=torch.float32, device=x.device)
        else:
            x = x.masked_fill(pad.unsqueeze(-1), 0)
            lengths = (~pad).sum(dim=1).view(-1, 1, 1).float()
        return (x.float() / lengths).sum(dim=1).to(x.dtype)
