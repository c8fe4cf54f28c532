"""The text-to-semantic GPT of GPT-SoVITS (s1, MODEL.md section 2).

Phones (+ BERT features) go in, 25 Hz semantic tokens come out, one per step. Module names equal the
keys of the official ``.ckpt`` files without their Lightning ``model.`` prefix, so
``load_state_dict(strict=True)`` is the whole compatibility story. Decoding loops live in
:mod:`engine.decoding`; file reading in :mod:`engine.checkpoints`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.kernels import Kernel, build_kernel, linear
from engine.kv_cache import KVCache
from engine.t2s_config import T2SConfig

if TYPE_CHECKING:
    from engine.checkpoints import T2SCheckpoint

BERT_DIM = 1024  # chinese-roberta-wwm-ext-large width, hard-coded upstream
PREBUILT_POSITIONS = 4000  # upstream builds this many sinusoid rows up front


def sinusoids(length: int, dim: int) -> Tensor:
    """``pe[p, 2i] = sin(p w_i)``, ``pe[p, 2i+1] = cos(p w_i)``, ``w_i = 10000^(-2i/dim)``, in float32."""
    # An explicit device: the table is real data even when the model is built on the meta device.
    position = torch.arange(length, dtype=torch.float32, device="cpu")[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device="cpu") * -(math.log(10000.0) / dim))
    angle = position * frequency
    return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1)


class TokenEmbedding(nn.Module):
    def __init__(self, vocab: int, dim: int) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)

    def forward(self, ids: Tensor) -> Tensor:
        return self.word_embeddings(ids)


class SinePositions(nn.Module):
    """``x + alpha * pe[position]`` with a learned scalar ``alpha`` (no sqrt(D) scaling)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1))
        self.register_buffer("pe", sinusoids(PREBUILT_POSITIONS, dim), persistent=False)

    def table(self, length: int) -> Tensor:
        if length > self.pe.shape[0]:  # rare: longer than upstream's prebuilt table
            self.pe = sinusoids(max(length, 2 * self.pe.shape[0]), self.pe.shape[1]).to(self.pe)
        return self.pe

    def forward(self, x: Tensor, start: int = 0) -> Tensor:
        """Positions ``start .. start+T-1`` added to ``x`` [B, T, D]."""
        pe = self.table(start + x.shape[1])[start : start + x.shape[1]]
        return x + self.alpha * pe.to(x.dtype)

    def at(self, positions: Tensor) -> Tensor:
        """``alpha * pe`` at per-row positions [B] -> [B, 1, D]."""
        return (self.alpha * self.pe[positions])[:, None]


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, same hooks) that runs its packed ``kernel`` when one is set."""

    kernel: Kernel | None = None

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias, self.kernel)


class SelfAttention(nn.Module):
    """Multi-head self-attention with upstream's fused in-projection (q, k, v stacked)."""

    in_kernel: Kernel | None = None

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        self.out_proj = Linear(dim, dim)

    def forward(self, x: Tensor, cache: KVCache, layer: int, mask: Tensor | None) -> Tensor:
        batch, length, dim = x.shape
        qkv = linear(x, self.in_proj_weight, self.in_proj_bias, self.in_kernel)
        qkv = qkv.view(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        keys, values = cache.append(layer, qkv[1:])
        out = F.scaled_dot_product_attention(qkv[0], keys, values, attn_mask=mask)
        out = out.transpose(1, 2).reshape(batch, length, dim)
        return self.out_proj(out)


class Block(nn.Module):
    """Post-norm transformer layer (``nn.TransformerEncoderLayer`` names, ReLU FFN, no dropout)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int) -> None:
        super().__init__()
        self.self_attn = SelfAttention(dim, heads)
        self.linear1 = Linear(dim, ffn_dim)
        self.linear2 = Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)

    def forward(self, x: Tensor, cache: KVCache, layer: int, mask: Tensor | None) -> Tensor:
        x = self.norm1(x + self.self_attn(x, cache, layer, mask))
        return self.norm2(x + self.linear2(F.relu(self.linear1(x))))


class Stack(nn.Module):
    def __init__(self, config: T2SConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            Block(config.hidden_dim, config.num_heads, config.ffn_dim) for _ in range(config.num_layers)
        )


class Text2SemanticGPT(nn.Module):
    matmul_mode = "exact"  # see use_matmul

    def __init__(self, config: T2SConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.hidden_dim
        self.bert_proj = Linear(BERT_DIM, dim)
        self.ar_text_embedding = TokenEmbedding(config.phoneme_vocab_size, dim)
        self.ar_text_position = SinePositions(dim)
        self.ar_audio_embedding = TokenEmbedding(config.vocab_size, dim)
        self.ar_audio_position = SinePositions(dim)
        self.h = Stack(config)
        self.ar_predict_layer = Linear(dim, config.vocab_size, bias=False)

    @classmethod
    def from_state_dict(
        cls,
        config: T2SConfig,
        state: Mapping[str, Tensor],
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        half_weights: bool = False,
    ) -> Text2SemanticGPT:
        """Build with ``state`` (our names, strict) without first filling random weights.

        ``half_weights``: see :meth:`keep_weights_half` (bit-identical results, half the memory). Off by
        default: widening per use costs more than it saves on the CPUs we measured (ops/bench/t2s.py
        ``--weights``: 42 vs 59 tokens/s at batch 1 on 2 Xeon cores).
        """
        with torch.device("meta"):
            model = cls(config)
        model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
        model = model.to(device=device, dtype=dtype).eval()
        return model.keep_weights_half() if half_weights else model

    @classmethod
    def from_checkpoint(
        cls,
        ckpt: T2SCheckpoint,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        half_weights: bool = False,
    ) -> Text2SemanticGPT:
        """Build from a loaded ``.ckpt``; fp16 file weights are upcast to ``dtype`` as upstream does
        (or, with ``half_weights``, kept in float16 and widened per use: the same numbers)."""
        config = T2SConfig.from_config(ckpt.config)
        return cls.from_state_dict(config, ckpt.state_dict(), device, dtype, half_weights)

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype (of activations and the KV cache)."""
        return self.ar_audio_embedding.word_embeddings.weight.dtype

    def keep_weights_half(self) -> Text2SemanticGPT:
        """Store the linear layers' matrices in float16 where that is lossless; compute keeps its dtype.

        Decoding one token at a time is bound by reading the weights, and official files hold float16
        weights anyway: widening them on use gives bit-identical results to float32 storage with half
        the resident memory (for hosts short of RAM; on our CPUs the widening costs more time than the
        smaller reads save). A no-op for half-precision models.
        """
        for module in self.modules():
            for param in module.parameters(recurse=False):
                if param.ndim != 2 or isinstance(module, nn.Embedding) or param.dtype != torch.float32:
                    continue
                half = param.detach().half()
                if torch.equal(half.float(), param.detach()):
                    param.data = half
        return self

    def use_matmul(self, mode: str) -> Text2SemanticGPT:
        """Run the linear layers with ``mode``'s kernels (:mod:`engine.kernels`; ``exact``: F.linear).

        The kernels hold packed copies of the weights: the parameters themselves stay as loaded, so
        ``state_dict`` and ``exact`` are unchanged, and switching back costs nothing.
        """
        for module in self.modules():
            if isinstance(module, Linear):
                module.kernel = build_kernel(mode, module.weight, module.bias)
            elif isinstance(module, SelfAttention):
                module.in_kernel = build_kernel(mode, module.in_proj_weight, module.in_proj_bias)
        self.matmul_mode = mode
        return self

    def embed_text(self, phones: Tensor, bert: Tensor) -> Tensor:
        """Phone ids [B, T] and BERT features [B, 1024, T] -> [B, T, D], text positions from 0."""
        projected = self.bert_proj(bert.transpose(1, 2).to(self.dtype))
        x = self.ar_text_embedding(phones) + projected
        return self.ar_text_position(x)

    def embed_audio(self, tokens: Tensor, start: int = 0) -> Tensor:
        """Semantic ids [B, T] -> [B, T, D] at audio positions ``start ..``."""
        return self.ar_audio_position(self.ar_audio_embedding(tokens), start)

    def embed_next(self, tokens: Tensor, positions: Tensor) -> Tensor:
        """One new token per row [B] at per-row audio positions [B] -> [B, 1, D]."""
        return self.ar_audio_embedding(tokens)[:, None] + self.ar_audio_position.at(positions).to(self.dtype)

    def forward(self, x: Tensor, cache: KVCache, mask: Tensor | None = None) -> Tensor:
        """Run the stack on ``x`` [B, T, D], appending its keys/values to ``cache``; returns [B, T, D].

        ``mask`` (bool, True = may attend, or additive float) broadcasts to [B, heads, T, cached + T].
        """
        for i, layer in enumerate(self.h.layers):
            x = layer(x, cache, i, mask)
        cache.advance(x.shape[1])
        return x

    def logits(self, hidden: Tensor) -> Tensor:
        head = self.ar_predict_layer
        return head(hidden)  # through the module, so forward hooks on the head see every step


def prefix_mask(text_len: int, audio_len: int, device: torch.device | str = "cpu") -> Tensor:
    """[T, T] bool, True = may attend: text sees all text and no audio; audio sees text and earlier audio."""
    total = text_len + audio_len
    row = torch.arange(total, device=device)[:, None]
    col = torch.arange(total, device=device)[None, :]
    return (col < text_len) | ((row >= text_len) & (col <= row))


def random_t2s_weights(config: T2SConfig, seed: int) -> dict[str, Tensor]:
    """Seeded random float32 weights under our module names (no ``model.`` prefix).

    Initialised like upstream's modules at construction (PyTorch defaults): Linear U(+-1/sqrt(fan_in)),
    embeddings N(0, 1), attention in-projection Xavier-uniform with zero biases, LayerNorm 1/0,
    position ``alpha`` 1. The generator is local: nothing global is seeded.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in Text2SemanticGPT(config).state_dict().items()}

    def uniform(shape: torch.Size, bound: float) -> Tensor:
        return (torch.rand(shape, generator=gen) * 2 - 1) * bound

    weights: dict[str, Tensor] = {}
    for key, shape in shapes.items():
        if key.endswith("position.alpha") or key.endswith(("norm1.weight", "norm2.weight")):
            value = torch.ones(shape)
        elif key.endswith(("norm1.bias", "norm2.bias", "in_proj_bias", "out_proj.bias")):
            value = torch.zeros(shape)
        elif key.endswith("word_embeddings.weight"):
            value = torch.randn(shape, generator=gen)
        elif key.endswith("in_proj_weight"):
            value = uniform(shape, math.sqrt(6.0 / (shape[0] + shape[1])))  # fan_out 3D, fan_in D
        elif key.endswith(".weight"):
            value = uniform(shape, 1.0 / math.sqrt(shape[1]))
        else:  # Linear bias: bound from the fan-in of its weight
            fan_in = shapes[key.removesuffix("bias") + "weight"][1]
            value = uniform(shape, 1.0 / math.sqrt(fan_in))
        weights[key] = value
    return weights
