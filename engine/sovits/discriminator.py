"""The SoVITS discriminator (fine-tuning only): one scale discriminator plus period discriminators.

v2 uses periods [2, 3, 5, 7, 11]; v2Pro and v2ProPlus add 17 and 23. ``channel_divisor`` > 1 gives the
narrow "tiny" variant for tests; only divisor 1 has upstream's shapes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.sovits.layers import LRELU_SLOPE, WNConv1d, WNConv2d, get_padding

PERIODS = {"v2": (2, 3, 5, 7, 11), "v2Pro": (2, 3, 5, 7, 11, 17, 23), "v2ProPlus": (2, 3, 5, 7, 11, 17, 23)}


class DiscriminatorS(nn.Module):
    """Strided grouped 1-D convolutions over the raw waveform."""

    def __init__(self, channel_divisor: int = 1) -> None:
        super().__init__()
        widths = [1] + [max(1, c // channel_divisor) for c in (16, 64, 256, 1024, 1024, 1024)]
        # (kernel, stride, groups, padding) per layer, as upstream
        specs = [(15, 1, 1, 7), (41, 4, 4, 20), (41, 4, 16, 20), (41, 4, 64, 20), (41, 4, 256, 20), (5, 1, 1, 2)]
        self.convs = nn.ModuleList()
        for i, (k, s, groups, pad) in enumerate(specs):
            groups = max(1, min(groups // channel_divisor, widths[i]))
            self.convs.append(WNConv1d(widths[i], widths[i + 1], k, s, pad, groups=groups))
        self.conv_post = WNConv1d(widths[-1], 1, 3, 1, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class DiscriminatorP(nn.Module):
    """The waveform folded into [T / period, period] and convolved along the first axis."""

    def __init__(self, period: int, channel_divisor: int = 1, kernel_size: int = 5, stride: int = 3) -> None:
        super().__init__()
        self.period = period
        widths = [1] + [max(1, c // channel_divisor) for c in (32, 128, 512, 1024, 1024)]
        pad = (get_padding(kernel_size), 0)
        self.convs = nn.ModuleList(
            WNConv2d(widths[i], widths[i + 1], (kernel_size, 1), (stride if i < 4 else 1, 1), pad) for i in range(5)
        )
        self.conv_post = WNConv2d(widths[-1], 1, (3, 1), (1, 1), (1, 0))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        b, c, t = x.shape
        if t % self.period:
            n_pad = self.period - t % self.period
            x = F.pad(x, (0, n_pad), "reflect")
            t += n_pad
        x = x.view(b, c, t // self.period, self.period)
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, version: str = "v2", channel_divisor: int = 1) -> None:
        super().__init__()
        if version not in PERIODS:
            raise ValueError(f"unsupported SoVITS version {version!r}; expected one of {tuple(PERIODS)}")
        discs: list[nn.Module] = [DiscriminatorS(channel_divisor)]
        discs += [DiscriminatorP(p, channel_divisor) for p in PERIODS[version]]
        self.discriminators = nn.ModuleList(discs)

    def forward(self, y: Tensor, y_hat: Tensor) -> tuple[list[Tensor], list[Tensor], list[list[Tensor]], list[list[Tensor]]]:
        """Real and generated waveforms [B, 1, T] -> (real scores, fake scores, real fmaps, fake fmaps)."""
        real, fake, fmap_real, fmap_fake = [], [], [], []
        for d in self.discriminators:
            r, fr = d(y)
            f, ff = d(y_hat)
            real.append(r)
            fake.append(f)
            fmap_real.append(fr)
            fmap_fake.append(ff)
        return real, fake, fmap_real, fmap_fake
