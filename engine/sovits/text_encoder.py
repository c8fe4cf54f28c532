"""The prior encoder ``enc_p``: SSL codes and phones -> frame-level mean and log-std.

SSL frames and phones are encoded separately, then MRTE lets every frame attend to the phones
and adds the timbre vector; a second encoder and a projection give the prior statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.sovits.attentions import Encoder, MultiHeadAttention
from engine.sovits.config import MRTE_DIM, SSL_DIM, SoVITSConfig
from engine.sovits.layers import masked


class MRTE(nn.Module):
    """Multi-reference timbre encoder: cross-attention from SSL frames to phones, at width 512."""

    def __init__(self, channels: int = 192, hidden: int = MRTE_DIM, n_heads: int = 4) -> None:
        super().__init__()
        self.cross_attention = MultiHeadAttention(hidden, hidden, n_heads)
        self.c_pre = nn.Conv1d(channels, hidden, 1)
        self.text_pre = nn.Conv1d(channels, hidden, 1)
        self.c_post = nn.Conv1d(hidden, channels, 1)

    def forward(self, ssl: Tensor, ssl_mask: Tensor | None, text: Tensor, text_mask: Tensor | None,
                ge: Tensor | None) -> Tensor:  # fmt: skip
        """ssl [B, 192, T], text [B, 192, P], ge [B, 512, 1] or None -> [B, 192, T]."""
        attn_mask = None
        if ssl_mask is not None and text_mask is not None:
            attn_mask = text_mask.unsqueeze(2) * ssl_mask.unsqueeze(-1)
        ssl = self.c_pre(masked(ssl, ssl_mask))
        text = self.text_pre(masked(text, text_mask))
        x = self.cross_attention(masked(ssl, ssl_mask), masked(text, text_mask), attn_mask) + ssl
        if ge is not None:
            x = x + ge
        return self.c_post(masked(x, ssl_mask))


class TextEncoder(nn.Module):
    def __init__(self, config: SoVITSConfig) -> None:
        super().__init__()
        c = config
        self.out_channels = c.inter_channels
        self.ssl_proj = nn.Conv1d(SSL_DIM, c.hidden_channels, 1)
        half = c.n_layers // 2
        self.encoder_ssl = Encoder(c.hidden_channels, c.filter_channels, c.n_heads, half, c.kernel_size, c.p_dropout)
        self.encoder_text = Encoder(
            c.hidden_channels, c.filter_channels, c.n_heads, c.n_layers, c.kernel_size, c.p_dropout
        )
        self.text_embedding = nn.Embedding(c.n_symbols, c.hidden_channels)
        self.mrte = MRTE(c.hidden_channels)
        self.encoder2 = Encoder(c.hidden_channels, c.filter_channels, c.n_heads, half, c.kernel_size, c.p_dropout)
        self.proj = nn.Conv1d(c.hidden_channels, c.inter_channels * 2, 1)

    def forward(
        self,
        ssl: Tensor,
        ssl_mask: Tensor | None,
        phones: Tensor,
        phones_mask: Tensor | None,
        ge: Tensor | None,
        speed: float = 1.0,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """ssl [B, 768, T] (50 Hz), phones [B, P] ids, ge [B, 512, 1] -> (x, m_p, logs_p, mask).

        ``speed != 1`` resamples the frames to ``int(T / speed) + 1`` (upstream's +1 kept).
        """
        y = masked(self.ssl_proj(masked(ssl, ssl_mask)), ssl_mask)
        y = self.encoder_ssl(y, ssl_mask)
        text = self.text_embedding(phones).transpose(1, 2)
        text = self.encoder_text(masked(text, phones_mask), phones_mask)
        y = self.mrte(y, ssl_mask, text, phones_mask, ge)
        y = self.encoder2(y, ssl_mask)
        if speed != 1:
            y = F.interpolate(y, size=int(y.shape[-1] / speed) + 1, mode="linear")
            if ssl_mask is not None:
                ssl_mask = F.interpolate(ssl_mask, size=y.shape[-1], mode="nearest")
        stats = masked(self.proj(y), ssl_mask)
        m_p, logs_p = torch.split(stats, self.out_channels, dim=1)
        return y, m_p, logs_p, ssl_mask
