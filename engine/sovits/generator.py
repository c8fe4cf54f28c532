"""``dec``: the HiFi-GAN v1 waveform generator (latent frames at 50 Hz -> 32 kHz samples).

This is where SoVITS spends its time (over 90 % on CPU). Activations stay in the channels-last
[B, C, 1, T] "rows" layout between the first and the last convolution (see engine.sovits.layers),
the upsampling runs polyphase, and activations are updated in place where no autograd graph is
being recorded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.sovits.config import SoVITSConfig
from engine.sovits.layers import LRELU_SLOPE, RowsConv1d, RowsConvTranspose1d, get_padding, to_rows


def _inplace_ok(x: Tensor) -> bool:
    return not (torch.is_grad_enabled() and x.requires_grad)


class ResBlock1(nn.Module):
    """Three (dilated conv, conv) pairs, each with leaky ReLUs and a residual add."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            RowsConv1d(channels, channels, kernel_size, dilation=d, padding=get_padding(kernel_size, d))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            RowsConv1d(channels, channels, kernel_size, padding=get_padding(kernel_size)) for _ in dilations
        )

    def forward(self, x: Tensor) -> Tensor:
        for conv1, conv2 in zip(self.convs1, self.convs2, strict=True):
            x = conv2(conv1(F.leaky_relu(x, LRELU_SLOPE), leaky=LRELU_SLOPE), residual=x)
        return x


class Generator(nn.Module):
    def __init__(self, config: SoVITSConfig) -> None:
        super().__init__()
        c = config
        self.num_kernels = len(c.resblock_kernel_sizes)
        self.conv_pre = nn.Conv1d(c.inter_channels, c.upsample_initial_channel, 7, 1, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(c.upsample_rates, c.upsample_kernel_sizes, strict=True)):
            ch_in, ch = c.upsample_initial_channel // 2**i, c.upsample_initial_channel // 2 ** (i + 1)
            self.ups.append(RowsConvTranspose1d(ch_in, ch, kernel, rate, padding=(kernel - rate) // 2))
            for k, d in zip(c.resblock_kernel_sizes, c.resblock_dilation_sizes, strict=True):
                self.resblocks.append(ResBlock1(ch, k, tuple(d)))
        self.conv_post = nn.Conv1d(ch, 1, 7, 1, padding=3, bias=False)
        if c.gin_channels:
            self.cond = nn.Conv1d(c.gin_channels, c.upsample_initial_channel, 1)

    def forward(self, z: Tensor, g: Tensor | None = None) -> Tensor:
        """z [B, inter, T] (already masked), g [B, gin, 1] or None -> wav [B, 1, T * 640]."""
        x = self.conv_pre(z)
        if g is not None:
            x = x + self.cond(g)
        x = to_rows(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            xs = blocks[0](x)
            for block in blocks[1:]:
                xs = xs.add_(block(x)) if _inplace_ok(xs) else xs + block(x)
            x = xs.div_(self.num_kernels) if _inplace_ok(xs) else xs / self.num_kernels
        x = F.leaky_relu(x)  # default slope 0.01 here, as upstream
        x = F.conv2d(x, self.conv_post.weight.unsqueeze(2), None, padding=(0, 3))
        return torch.tanh(x).squeeze(2)
