"""``enc_q``: the posterior encoder (linear spectrogram -> latent), used only to train SoVITS."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.sovits.flow import WN
from engine.sovits.layers import gaussian_noise, masked


class PosteriorEncoder(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int, kernel_size: int,
                 dilation_rate: int, n_layers: int, gin_channels: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.out_channels = out_channels
        self.pre = nn.Conv1d(in_channels, hidden_channels, 1)
        self.enc = WN(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels=gin_channels)
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(self, spec: Tensor, mask: Tensor | None, g: Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        """spec [B, 1025, T] -> (z, m_q, logs_q), z drawn from N(m_q, exp(logs_q))."""
        if g is not None:
            g = g.detach()  # the timbre path is trained through the prior and decoder, not through enc_q
        x = masked(self.pre(spec), mask)
        x = self.enc(x, mask, g)
        m, logs = torch.split(masked(self.proj(x), mask), self.out_channels, dim=1)
        z = masked(m + gaussian_noise(m, generator) * torch.exp(logs), mask)
        return z, m, logs
