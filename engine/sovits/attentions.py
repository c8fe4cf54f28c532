"""VITS attention blocks: multi-head attention with windowed relative positions, FFN, Encoder.

Masks are optional everywhere: at inference every position is valid, so ``mask=None`` skips the
multiplications (which would all be by 1) and the masked fill.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.sovits.layers import ChannelLayerNorm, masked


class MultiHeadAttention(nn.Module):
    """1x1-conv projections; with ``window_size`` the relative-position terms of VITS are added.

    The relative embeddings (``emb_rel_k``/``emb_rel_v`` [1, 2w+1, head_dim], shared by all heads)
    only touch keys within ``w`` positions of the query, i.e. ``2w+1`` diagonals of the score matrix,
    so we add them diagonal by diagonal instead of building [T, 2T-1] skew matrices.
    """

    def __init__(self, channels: int, out_channels: int, n_heads: int, p_dropout: float = 0.0,
                 window_size: int | None = None) -> None:  # fmt: skip
        super().__init__()
        assert channels % n_heads == 0
        self.n_heads = n_heads
        self.head_dim = channels // n_heads
        self.window_size = window_size
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, out_channels, 1)
        self.drop = nn.Dropout(p_dropout)
        if window_size is not None:
            rel_shape = (1, 2 * window_size + 1, self.head_dim)
            self.emb_rel_k = nn.Parameter(torch.randn(rel_shape) * self.head_dim**-0.5)
            self.emb_rel_v = nn.Parameter(torch.randn(rel_shape) * self.head_dim**-0.5)

    def forward(self, x: Tensor, context: Tensor, mask: Tensor | None = None) -> Tensor:
        """x [B, C, Tq] attends to context [B, C, Tk]; mask [B, 1, Tq, Tk] (1 = keep) or None."""
        b, c, t_q = x.shape
        t_k = context.shape[2]
        q = self.conv_q(x).view(b, self.n_heads, self.head_dim, t_q).transpose(2, 3)
        k = self.conv_k(context).view(b, self.n_heads, self.head_dim, t_k).transpose(2, 3)
        v = self.conv_v(context).view(b, self.n_heads, self.head_dim, t_k).transpose(2, 3)

        q = q / math.sqrt(self.head_dim)
        scores = q @ k.transpose(-2, -1)  # [B, H, Tq, Tk]
        if self.window_size is not None:
            assert t_q == t_k, "relative positions are only defined for self-attention"
            rel_logits = q @ self.emb_rel_k.transpose(-2, -1).unsqueeze(0)  # [B, H, T, 2w+1]
            self._add_band(scores, rel_logits)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e4)
        p_attn = self.drop(F.softmax(scores, dim=-1))
        out = p_attn @ v
        if self.window_size is not None:
            out = out + self._band(p_attn) @ self.emb_rel_v.unsqueeze(0)
        out = out.transpose(2, 3).reshape(b, c, t_q)
        return self.conv_o(out)

    def _offsets(self, length: int) -> range:
        w = min(self.window_size or 0, length - 1)  # offsets beyond the sequence touch nothing
        return range(-w, w + 1)

    def _add_band(self, scores: Tensor, band: Tensor) -> None:
        """scores[..., i, i+r] += band[..., i, r+w] for every valid i and |r| <= w (in place)."""
        length, w = scores.shape[-1], self.window_size or 0
        for r in self._offsets(length):
            rows = slice(0, length - r) if r >= 0 else slice(-r, length)
            torch.diagonal(scores, offset=r, dim1=-2, dim2=-1).add_(band[..., rows, r + w])

    def _band(self, p_attn: Tensor) -> Tensor:
        """band[..., i, r+w] = p_attn[..., i, i+r] (0 where i+r falls outside): [B, H, T, 2w+1]."""
        length, w = p_attn.shape[-1], self.window_size or 0
        band = p_attn.new_zeros(*p_attn.shape[:-1], 2 * w + 1)
        for r in self._offsets(length):
            rows = slice(0, length - r) if r >= 0 else slice(-r, length)
            band[..., rows, r + w] = torch.diagonal(p_attn, offset=r, dim1=-2, dim2=-1)
        return band


class FFN(nn.Module):
    """conv(k) -> ReLU -> conv(k), "same" padding, masked before each conv."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int, p_dropout: float = 0.0) -> None:
        super().__init__()
        self.pad = ((kernel_size - 1) // 2, kernel_size // 2)
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size)
        self.drop = nn.Dropout(p_dropout)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        x = torch.relu(self.conv_1(F.pad(masked(x, mask), self.pad)))
        x = self.conv_2(F.pad(masked(self.drop(x), mask), self.pad))
        return masked(x, mask)


class Encoder(nn.Module):
    """Post-norm transformer over [B, C, T]: relative self-attention (window 4) then a conv FFN."""

    def __init__(self, hidden_channels: int, filter_channels: int, n_heads: int, n_layers: int,
                 kernel_size: int = 1, p_dropout: float = 0.0, window_size: int = 4) -> None:  # fmt: skip
        super().__init__()
        self.drop = nn.Dropout(p_dropout)
        self.attn_layers = nn.ModuleList(
            MultiHeadAttention(hidden_channels, hidden_channels, n_heads, p_dropout, window_size)
            for _ in range(n_layers)
        )
        self.norm_layers_1 = nn.ModuleList(ChannelLayerNorm(hidden_channels) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(
            FFN(hidden_channels, filter_channels, kernel_size, p_dropout) for _ in range(n_layers)
        )
        self.norm_layers_2 = nn.ModuleList(ChannelLayerNorm(hidden_channels) for _ in range(n_layers))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x [B, C, T], mask [B, 1, T] or None."""
        attn_mask = None if mask is None else mask.unsqueeze(2) * mask.unsqueeze(-1)
        x = masked(x, mask)
        for attn, norm_1, ffn, norm_2 in zip(
            self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2, strict=True
        ):
            x = norm_1(x + self.drop(attn(x, x, attn_mask)))
            x = norm_2(x + self.drop(ffn(x, mask)))
        return masked(x, mask)
