"""The semantic codebook: residual VQ with one layer of 1024 codewords over 768-d SSL features.

Kept in upstream's module layout (``quantizer.vq.layers.0._codebook.*``) so the EMA buffers that the
files carry (``inited``, ``cluster_size``, ``embed_avg``) load and save unchanged. We only encode
and look up: the codebook is frozen in SoVITS training too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class EuclideanCodebook(nn.Module):
    def __init__(self, dim: int, codebook_size: int) -> None:
        super().__init__()
        self.register_buffer("inited", torch.ones(1))
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("embed", torch.zeros(codebook_size, dim))
        self.register_buffer("embed_avg", torch.zeros(codebook_size, dim))

    def encode(self, x: Tensor) -> Tensor:
        """[N, D] -> [N] index of the nearest codeword (squared Euclidean distance).

        Always in float32: half-precision sums of 768 squares can overflow or flip a nearest code.
        """
        x, embed = x.float(), self.embed.float().t()
        dist = x.pow(2).sum(1, keepdim=True) - 2 * x @ embed + embed.pow(2).sum(0, keepdim=True)
        return dist.argmin(dim=-1)

    def decode(self, indices: Tensor) -> Tensor:
        return F.embedding(indices, self.embed)


class VectorQuantization(nn.Module):
    def __init__(self, dim: int, codebook_size: int) -> None:
        super().__init__()
        self._codebook = EuclideanCodebook(dim, codebook_size)

    def encode(self, x: Tensor) -> Tensor:
        """[B, D, T] -> [B, T]."""
        b, d, t = x.shape
        return self._codebook.encode(x.transpose(1, 2).reshape(b * t, d)).view(b, t)

    def decode(self, indices: Tensor) -> Tensor:
        """[B, T] -> [B, D, T]."""
        return self._codebook.decode(indices).transpose(1, 2)


class ResidualVectorQuantization(nn.Module):
    def __init__(self, dim: int, codebook_size: int, n_q: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(VectorQuantization(dim, codebook_size) for _ in range(n_q))


class ResidualVectorQuantizer(nn.Module):
    def __init__(self, dim: int, codebook_size: int, n_q: int = 1) -> None:
        super().__init__()
        self.vq = ResidualVectorQuantization(dim, codebook_size, n_q)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """[B, D, T] -> (codes [n_q, B, T], quantized [B, D, T])."""
        residual, quantized, codes = x, torch.zeros_like(x), []
        for layer in self.vq.layers:
            indices = layer.encode(residual)
            q = layer.decode(indices)
            residual = residual - q
            quantized = quantized + q
            codes.append(indices)
        return torch.stack(codes), quantized

    def decode(self, codes: Tensor) -> Tensor:
        """codes [n_q, B, T] -> [B, D, T] (sum over layers)."""
        out = self.vq.layers[0].decode(codes[0])
        for i in range(1, codes.shape[0]):
            out = out + self.vq.layers[i].decode(codes[i])
        return out
