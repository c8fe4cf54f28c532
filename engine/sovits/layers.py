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


def masked(x: Tensor, mask: Tensor | None) -> Tensor:
    """x * mask; ``mask=None`` (inference: every position valid) skips the multiplication."""
    return x if mask is None else x * mask


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
    """weight = weight_g * weight_v / ||weight_v|| (norm over every dim but 0), as legacy weight_norm.

    ``kernel()`` is the tensor the forward pass convolves with: the normed weight, possibly rearranged
    for a faster layout (``_arrange``). ``fold()`` computes it once and keeps it.
    """

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
        """The normed weight in the layout of the state dict."""
        return self.weight_v * (self.weight_g / _norm_except_dim0(self.weight_v))

    def _arrange(self, weight: Tensor) -> Tensor:
        return weight

    def kernel(self) -> Tensor:
        return self.weight if self.weight is not None else self._arrange(self.effective_weight())

    @torch.no_grad()
    def fold(self) -> None:
        v = self.weight_v.float()
        weight = (v * (self.weight_g.float() / _norm_except_dim0(v))).to(self.weight_v.dtype)
        self.weight = self._arrange(weight)

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
        return F.conv1d(x, self.kernel(), self.bias, self.stride, self.padding, self.dilation, self.groups)


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
        return F.conv2d(x, self.kernel(), self.bias, self.stride, self.padding)


# -- the waveform generator's layers, in "rows" layout ---------------------------------------------
# On CPU a 1-D convolution runs noticeably faster as a 2-D one over [B, C, 1, T] in channels-last
# memory (time-major, channels innermost): about a third less time for the HiFi-GAN convolutions
# here. The generator keeps its activations in that layout from its first to its last layer.


class _PackedKernel:
    """A oneDNN-prepacked copy of a folded kernel (CPU inference only).

    oneDNN otherwise reorders every weight into its blocked layout on every call; packing once cuts
    the generator's CPU time by about a fifth, with bit-identical results. The packed tensor is opaque
    (no storage), so it is dropped, not copied, by deepcopy and pickling, and rebuilt on demand.
    """

    def __init__(self) -> None:
        self.dtype: torch.dtype | None = None
        self.tensor: Tensor | None = None
        self.failed = False

    def __deepcopy__(self, memo: dict) -> _PackedKernel:
        return _PackedKernel()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()


def _can_pack(x: Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.bfloat16)
        and not (torch.is_grad_enabled() and x.requires_grad)
        and torch.backends.mkldnn.is_available()
    )


def to_rows(x: Tensor) -> Tensor:
    """[B, C, T] -> [B, C, 1, T] in channels-last memory."""
    return x.unsqueeze(2).contiguous(memory_format=torch.channels_last)


def _rows_kernel(weight: Tensor) -> Tensor:
    return weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)


class _RowsConv(_WeightNormConv):
    """Shared by the rows-layout convolutions: a 2-D convolution with (1, k) kernels, prepacked for
    oneDNN once folded (see _PackedKernel)."""

    stride_2d: tuple[int, int]
    padding_2d: tuple[int, int]
    dilation_2d: tuple[int, int]
    groups: int

    def _conv(self, x: Tensor, bias: Tensor | None, leaky: float | None = None,
              residual: Tensor | None = None) -> Tensor:  # fmt: skip
        """conv(x) + bias, then ``leaky_relu(., leaky)`` or ``+ residual`` when given.

        On the packed path oneDNN applies the activation or the addition as it writes the output,
        saving a pass over the activations (same numbers as the separate operations).
        """
        packed = self._packed(x) if self.weight is not None and _can_pack(x) else None
        if packed is None:
            y = F.conv2d(x, self.kernel(), bias, self.stride_2d, self.padding_2d, self.dilation_2d, self.groups)
            inplace = not (torch.is_grad_enabled() and y.requires_grad)
            if leaky is not None:
                y = F.leaky_relu_(y, leaky) if inplace else F.leaky_relu(y, leaky)
            if residual is not None:
                y = y.add_(residual) if inplace else y + residual
            return y
        x = x.contiguous(memory_format=torch.channels_last)
        geometry = (list(self.padding_2d), list(self.stride_2d), list(self.dilation_2d), self.groups)
        if residual is not None:
            residual = residual.contiguous(memory_format=torch.channels_last)
            return torch.ops.mkldnn._convolution_pointwise.binary(
                x, residual, packed, bias, *geometry, "add", None, None, [], None
            )
        if leaky is not None:
            return torch.ops.mkldnn._convolution_pointwise(x, packed, bias, *geometry, "leaky_relu", [leaky], "")
        return torch.ops.mkldnn._convolution_pointwise(x, packed, bias, *geometry, "none", [], "")

    def _packed(self, x: Tensor) -> Tensor | None:
        cache = self.__dict__.setdefault("_packed_kernel", _PackedKernel())
        if cache.failed:
            return None
        if cache.dtype != x.dtype or cache.tensor is None:
            try:
                cache.tensor = torch.ops.mkldnn._reorder_convolution_weight(
                    self.weight.to(x.dtype), list(self.padding_2d), list(self.stride_2d), list(self.dilation_2d),
                    self.groups, list(x.shape),
                )  # fmt: skip
                cache.dtype = x.dtype
            except (RuntimeError, AttributeError):  # a build without these oneDNN ops: plain conv2d
                cache.failed = True
                return None
        return cache.tensor

    def _forget_packed(self) -> None:
        self.__dict__.pop("_packed_kernel", None)

    def fold(self) -> None:
        self._forget_packed()
        super().fold()

    def unfold(self) -> None:
        self._forget_packed()
        super().unfold()

    def _apply(self, fn: object, recurse: bool = True) -> nn.Module:  # .to(), .half(), .cuda() ...
        self._forget_packed()
        return super()._apply(fn, recurse)  # type: ignore[arg-type]


class RowsConv1d(_RowsConv):
    """A weight-normed Conv1d applied to [B, C, 1, T] channels-last activations."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 dilation: int = 1) -> None:  # fmt: skip
        super().__init__((out_channels, in_channels, kernel_size), out_channels, True)
        self.stride_2d, self.padding_2d, self.dilation_2d, self.groups = (1, 1), (0, padding), (1, dilation), 1

    def _arrange(self, weight: Tensor) -> Tensor:
        return _rows_kernel(weight)

    def forward(self, x: Tensor, leaky: float | None = None, residual: Tensor | None = None) -> Tensor:
        return self._conv(x, self.bias, leaky, residual)


class RowsConvTranspose1d(_RowsConv):
    """A weight-normed ConvTranspose1d on [B, C, 1, T] channels-last activations, computed polyphase.

    Output sample ``q*u + r`` only sees input samples ``q - s`` through taps ``s*u + r``, so the
    transposed convolution is an ordinary convolution with ``u * out`` channels (one group per
    phase ``r``) whose outputs interleave. In channels-last memory the interleave is a free reshape.
    This avoids the slow transposed-convolution kernels (up to 5x faster here).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> None:
        # Transposed-conv weights are [in, out, k]; the norm is still taken per slice of dim 0.
        super().__init__((in_channels, out_channels, kernel_size), out_channels, True)
        self.out_channels, self.kernel_size, self.stride, self.padding = out_channels, kernel_size, stride, padding
        self.taps = -(-kernel_size // stride)  # input samples that reach one output sample
        self.stride_2d, self.padding_2d, self.dilation_2d, self.groups = (1, 1), (0, self.taps - 1), (1, 1), 1

    def _arrange(self, weight: Tensor) -> Tensor:
        u, taps = self.stride, self.taps
        w = F.pad(weight, (0, taps * u - self.kernel_size))  # [in, out, taps * u]
        w = w.view(weight.shape[0], self.out_channels, taps, u).flip(2)  # cross-correlation order
        w = w.permute(3, 1, 0, 2).reshape(u * self.out_channels, weight.shape[0], taps)  # [(r, out), in, taps]
        return _rows_kernel(w)

    def forward(self, x: Tensor) -> Tensor:
        b, t, u = x.shape[0], x.shape[-1], self.stride
        bias = self.bias.repeat(u) if self.bias is not None else None
        y = self._conv(x, bias)  # [B, u*out, 1, t + taps - 1]
        phases = y.shape[-1]
        # channels-last memory is [B][time][phase][out], i.e. already [B][time * u][out]
        y = y.permute(0, 2, 3, 1).reshape(b, 1, phases * u, self.out_channels).permute(0, 3, 1, 2)
        length = (t - 1) * u + self.kernel_size - 2 * self.padding
        return y[..., self.padding : self.padding + length]


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
