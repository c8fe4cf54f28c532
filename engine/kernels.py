"""Matrix kernels for the linear layers of the GPT and BERT on CPU, chosen at start from what the CPU offers.

Decoding one token per step reads every weight once per step, so on a CPU the step is bound by memory
traffic (300 MB of float32 weights per token) and by how good the BLAS kernel is on that vendor's
chips: float32 ``F.linear`` is 13 ms of our 17 ms step on a 2-core Intel Xeon, and 78 % of
upstream's step on a 2-core AMD EPYC (``../shared/research/upstream_baseline_cpu.md``), where both
sides ran at the same speed. BERT on one short sentence (the first chunk of a render, before any
audio) is bound the same way: 1.3 GB of float32 weights for a dozen tokens. Modes
(``ops/bench/t2s.py --matmul``; :func:`engine.decoding.teacher_forced_logits` measures how far each
moves the logits from float32):

- ``exact``: float32 weights through ``F.linear``: upstream's numbers; the parity checks use it.
- ``bf16``: weights packed once for oneDNN in bfloat16; a layer's input is rounded to bfloat16, the
  products accumulate in float32 and the bias is added in float32. The residual stream, layer norms,
  attention and sampling stay float32. Half the bytes per step, and native on CPUs with AVX512-BF16
  or AMX (Intel Sapphire Rapids and later, AMD Zen 4 and later).
- ``int8``: weights quantized per output row to int8 once, inputs per tensor at every call (PyTorch's
  dynamic quantization through fbgemm/oneDNN, AVX2 and later; VNNI where present). A quarter of the
  bytes; the coarsest of the three.

``auto`` takes int8 on every x86 CPU with AVX2 (the step is bound by the bytes it reads, on every
vendor, and int8 reads the fewest; fbgemm and oneDNN are vendor-neutral, unlike MKL's float32 sgemm),
else exact; on GPUs (already half precision) exact. bf16 is there by name: it moves the numbers least,
but oneDNN prepares a kernel for each new input shape, and a render's prefills all differ in length.

Batching: with exact kernels, greedy decoding gives a chunk the same tokens alone or in a batch (a
test checks it). The fast modes do not promise that: int8 quantizes a call's input with one scale for
all its rows, and oneDNN picks other bf16 kernels for other row counts, so a batch moves a chunk's
numbers slightly. (Sampled decoding depends on the batch in every mode: one generator draws for all rows.)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contracts import MATMUL_SETTINGS

MODES = MATMUL_SETTINGS
Kernel = Callable[[Tensor], Tensor]


@cache  # the CPU does not change while the process runs; every layer's kernel asks
def cpu_offers() -> frozenset[str]:
    """The instruction-set features the kernels care about, as this process's PyTorch sees them."""
    checks = {"avx2": torch.cpu._is_avx2_supported, "avx512": torch.cpu._is_avx512_supported,
              "avx512_bf16": torch.cpu._is_avx512_bf16_supported, "amx": torch.cpu._is_amx_tile_supported,
              "vnni": torch.cpu._is_vnni_supported}  # fmt: skip
    return frozenset(name for name, check in checks.items() if check())


def choose_mode(requested: str, device: torch.device, dtype: torch.dtype,
                offers: frozenset[str] | set[str] | None = None) -> str:  # fmt: skip
    """The mode to run: ``requested`` unless it is ``auto``; only float32 CPU models take a fast mode."""
    if requested not in MODES:
        raise ValueError(f"matmul mode (ECHODIARY_MATMUL) must be one of {', '.join(MODES)}, got {requested!r}")
    if device.type != "cpu" or dtype != torch.float32:
        return "exact"
    if requested != "auto":
        return requested
    offers = cpu_offers() if offers is None else offers
    if "avx2" in offers and "x86" in torch.backends.quantized.supported_engines:
        return "int8"
    return "exact"


def bf16_kernel(weight: Tensor, bias: Tensor | None) -> Kernel:
    packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach().to(torch.bfloat16), None)
    bias32 = None if bias is None else bias.detach().float()

    def run(x: Tensor) -> Tensor:
        flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
        y = torch.ops.mkldnn._linear_pointwise(flat, packed, None, "none", [], "").to(x.dtype)
        if bias32 is not None:
            y.add_(bias32)
        return y.view(*x.shape[:-1], y.shape[-1])

    return run


def int8_kernel(weight: Tensor, bias: Tensor | None, reduce_range: bool) -> Kernel:
    """``reduce_range``: 7-bit inputs, which CPUs without VNNI need to keep their int16 sums from saturating."""
    w = weight.detach().float()
    scales = (w.abs().amax(dim=1) / 127).clamp_min(1e-12).double()
    zeros = torch.zeros(w.shape[0], dtype=torch.long)
    quantized = torch.quantize_per_channel(w, scales, zeros, 0, torch.qint8)
    packed = torch.ops.quantized.linear_prepack(quantized, None if bias is None else bias.detach().float())

    def run(x: Tensor) -> Tensor:
        return torch.ops.quantized.linear_dynamic(x, packed, reduce_range)

    return run


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, kernel: Kernel | None = None) -> Tensor:
    """The layer's ``kernel`` while no gradient is taken (training always takes the exact path); else
    ``F.linear``, first widening a half-stored weight to the activations' dtype.

    See :meth:`engine.t2s.Text2SemanticGPT.keep_weights_half`: official files store float16 weights, so
    widening them per use gives exactly the float32 weights upstream computes with.
    """
    if kernel is not None and not torch.is_grad_enabled():
        return kernel(x)
    if weight.dtype != x.dtype:
        weight = weight.to(x.dtype)
    return F.linear(x, weight, bias)


def build_kernel(mode: str, weight: Tensor, bias: Tensor | None) -> Kernel | None:
    """The fast kernel for one layer, or None for ``exact`` (the caller keeps ``F.linear``)."""
    if mode == "exact":
        return None
    if mode == "bf16":
        return bf16_kernel(weight, bias)
    if mode == "int8":
        torch.backends.quantized.engine = "x86"
        return int8_kernel(weight, bias, reduce_range="vnni" not in cpu_offers())
    raise ValueError(f"no kernel for mode {mode!r}")


def use_kernels(module: nn.Module, mode: str) -> None:
    """Give every ``nn.Linear`` inside a model we do not define (BERT) ``mode``'s kernel, while no
    gradient is taken; ``exact`` gives them back their own ``forward``."""
    for layer in module.modules():
        if type(layer) is not nn.Linear:
            continue
        layer.__dict__.pop("forward", None)
        kernel = build_kernel(mode, layer.weight, layer.bias)
        if kernel is not None:
            layer.forward = _served_by(kernel, layer)


def _served_by(kernel: Kernel, layer: nn.Linear) -> Kernel:
    def forward(x: Tensor) -> Tensor:
        return linear(x, layer.weight, layer.bias, kernel)

    return forward
