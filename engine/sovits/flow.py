"""The normalising flow between the prior and the decoder's latent, and the WaveNet stack it uses."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.sovits.layers import WNConv1d, masked


class WN(nn.Module):
    """Non-causal WaveNet: gated dilated convs with a per-layer global condition, summed skips."""

    def __init__(self, hidden_channels: int, kernel_size: int, dilation_rate: int, n_layers: int,
                 gin_channels: int = 0, p_dropout: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        self.hidden_channels = hidden_channels
        self.n_layers = n_layers
        self.drop = nn.Dropout(p_dropout)
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        if gin_channels:
            self.cond_layer = WNConv1d(gin_channels, 2 * hidden_channels * n_layers, 1)
        for i in range(n_layers):
            dilation = dilation_rate**i
            padding = (kernel_size * dilation - dilation) // 2
            self.in_layers.append(WNConv1d(hidden_channels, 2 * hidden_channels, kernel_size, dilation=dilation,
                                           padding=padding))  # fmt: skip
            res_skip_channels = 2 * hidden_channels if i < n_layers - 1 else hidden_channels
            self.res_skip_layers.append(WNConv1d(hidden_channels, res_skip_channels, 1))

    def forward(self, x: Tensor, mask: Tensor | None, g: Tensor | None = None) -> Tensor:
        h = self.hidden_channels
        cond = self.cond_layer(g) if g is not None else None
        output = torch.zeros_like(x)
        for i, (in_layer, res_skip_layer) in enumerate(zip(self.in_layers, self.res_skip_layers, strict=True)):
            x_in = in_layer(x)
            if cond is not None:
                x_in = x_in + cond[:, 2 * h * i : 2 * h * (i + 1)]
            acts = self.drop(torch.tanh(x_in[:, :h]) * torch.sigmoid(x_in[:, h:]))
            res_skip = res_skip_layer(acts)
            if i < self.n_layers - 1:
                x = masked(x + res_skip[:, :h], mask)
                output = output + res_skip[:, h:]
            else:
                output = output + res_skip
        return masked(output, mask)


class ResidualCouplingLayer(nn.Module):
    """Mean-only affine coupling: the second half is shifted by a WaveNet of the first half."""

    def __init__(self, channels: int, hidden_channels: int, kernel_size: int, dilation_rate: int, n_layers: int,
                 gin_channels: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.half_channels = channels // 2
        self.pre = nn.Conv1d(self.half_channels, hidden_channels, 1)
        self.enc = WN(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels=gin_channels)
        self.post = nn.Conv1d(hidden_channels, self.half_channels, 1)

    def forward(self, x: Tensor, mask: Tensor | None, g: Tensor | None = None, reverse: bool = False) -> Tensor:
        x0, x1 = torch.split(x, [self.half_channels] * 2, dim=1)
        h = self.enc(masked(self.pre(x0), mask), mask, g)
        shift = masked(self.post(h), mask)
        x1 = masked(x1 - shift, mask) if reverse else shift + masked(x1, mask)
        return torch.cat([x0, x1], dim=1)


class Flip(nn.Module):
    def forward(self, x: Tensor, mask: Tensor | None = None, g: Tensor | None = None, reverse: bool = False) -> Tensor:
        return torch.flip(x, [1])


class ResidualCouplingBlock(nn.Module):
    """Coupling layers alternating with channel flips (``flows.0``, ``flows.2``, ... carry weights)."""

    def __init__(self, channels: int, hidden_channels: int, kernel_size: int, dilation_rate: int, n_layers: int,
                 n_flows: int = 4, gin_channels: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            self.flows.append(ResidualCouplingLayer(channels, hidden_channels, kernel_size, dilation_rate, n_layers,
                                                    gin_channels))  # fmt: skip
            self.flows.append(Flip())

    def forward(self, x: Tensor, mask: Tensor | None, g: Tensor | None = None, reverse: bool = False) -> Tensor:
        flows = reversed(self.flows) if reverse else self.flows
        for flow in flows:
            x = flow(x, mask, g=g, reverse=reverse)
        return x
