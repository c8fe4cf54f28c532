"""Building blocks shared by the SoVITS modules: channel LayerNorm and weight-normed convolutions.

Upstream uses the legacy ``torch.nn.utils.weight_norm`` whose state-dict keys are ``weight_g`` /
``weight_v``. Our convolutions own those two parameters directly (same keys, no hooks) and can fold
them into one cached weight for inference, so the norm is not recomputed on every call.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LRELU_SLOPE = 0.1


def sequence_mask(lengths: Tensor, max_length: int | None = None) -> Tensor:
    """[B] lengths -> [B, T] boolean, True on valid positions."""
    max_length = int(lengths.max()) if max_length is None else max_length
    positions = torch.arange(max_length, dtype=lengths.dtype, device=lengths.device)
    return positions[None, :] < lengths[:, None]


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of [B, C, T] (upstream's ``modules.LayerNorm``: gamma/beta)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        x = F.layer_norm(x.transpose(1, -1), (self.channels,), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


def _norm_except_dim0(v: Tensor) -> Tensor:
    return v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))


class _WeightNormConv(nn.Module):
    """weight = weight_g * weight_v / ||weight_v|| (norm over every dim but 0), as legacy weight_norm."""

    weight: Tensor | None

    def __init__(self, weight_shape: tuple[int, ...], bias_channels: int, bias: bool) -> None:
        super().__init__()
        # bias first, then g and v: the key order of upstream's files
        self.bias = nn.Parameter(torch.zeros(bias_channels)) if bias else None
        self.weight_g = nn.Parameter(torch.ones(weight_shape[0], *([1] * (len(weight_shape) - 1))))
        self.weight_v = nn.Parameter(torch.empty(weight_shape))
        # Set by fold(): a non-persistent buffer, so it follows .to() but never reaches the state dict.
        self.register_buffer("weight", None, persistent=False)

    def effective_weight(self) -> Tensor:
        if self.weight is not None:
            return self.weight
        return self.weight_v * (self.weight_g / _norm_except_dim0(self.weight_v))

    @torch.no_grad()
    def fold(self) -> None:
        v = self.weight_v.float()
        self.weight = (v * (self.weight_g.float() / _norm_except_dim0(v))).to(self.weight_v.dtype)

    def unfold(self) -> None:
        self.weight = None

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args)
        if self.weight is not None:  # keep a folded weight in step with the new g/v
            self.fold()


class WNConv1d(_WeightNormConv):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__((out_channels, in_channels // groups, kernel_size), out_channels, bias)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def forward(self, x: Tensor) -> Tensor:
        return F.conv1d(x, self.effective_weight(), self.bias, self.stride, self.padding, self.dilation, self.groups)


class WNConvTranspose1d(_WeightNormConv):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> None:
        # Transposed-conv weights are [in, out, k]; the norm is still taken per slice of dim 0.
        super().__init__((in_channels, out_channels, kernel_size), out_channels, True)
        self.stride, self.padding = stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return F.conv_transpose1d(x, self.effective_weight(), self.bias, self.stride, self.padding)


class WNConv2d(_WeightNormConv):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int],
    ) -> None:
        super().__init__((out_channels, in_channels, *kernel_size), out_channels, True)
        self.stride, self.padding = stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.effective_weight(), self.bias, self.stride, self.padding)


def weight_norm_modules(module: nn.Module) -> Iterator[_WeightNormConv]:
    return (m for m in module.modules() if isinstance(m, _WeightNormConv))


def fold_weight_norm(module: nn.Module) -> nn.Module:
    """Compute every weight-normed weight once (inference); call again after loading new weights."""
    for m in weight_norm_modules(module):
        m.fold()
    return module


def unfold_weight_norm(module: nn.Module) -> nn.Module:
    """Back to computing the weight from weight_g/weight_v on every call (training)."""
    for m in weight_norm_modules(module):
        m.unfold()
    return module


def gaussian_noise(like: Tensor, generator: torch.Generator | None) -> Tensor:
    """N(0, 1) of ``like``'s shape, drawn on the generator's device (a seeded CPU generator gives the
    same numbers whatever device the model runs on), then moved to ``like``'s device and dtype."""
    device = generator.device if generator is not None else like.device
    noise = torch.randn(like.shape, generator=generator, device=device, dtype=torch.float32)
    return noise.to(device=like.device, dtype=like.dtype)
