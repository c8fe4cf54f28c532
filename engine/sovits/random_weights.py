"""Seeded random SoVITS generator and discriminator weights, for tests, demos and benchmarks.

Every tensor is drawn from one ``torch.Generator`` in state-dict order (the global RNG is untouched),
with PyTorch's default scales: convs and linears uniform in +-1/sqrt(fan_in), weight-norm gains
equal to the norm of their direction, LayerNorm 1/0, the codebook marked initialised. (Upstream
starts its HiFi-GAN convs at N(0, 0.01); at that scale the output barely depends on the latent, which
makes a random model useless for checking that the generator's input reaches its output.)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from engine.sovits.config import SoVITSConfig
from engine.sovits.discriminator import MultiPeriodDiscriminator
from engine.sovits.model import SoVITS

DISCRIMINATOR_DIVISORS = {"full": 1, "tiny": 16}


def random_sovits_weights(config: SoVITSConfig, seed: int, with_posterior: bool = True) -> dict[str, Tensor]:
    """A float32 state dict with exactly the keys and shapes of ``SoVITS(config)``."""
    with torch.device("meta"):
        model = SoVITS(config, with_posterior=with_posterior)
    return _random_state(model, seed)


def random_discriminator_weights(version: str, size: str, seed: int) -> dict[str, Tensor]:
    """``size="full"`` has upstream's shapes (manifests/s2D_*.json); ``"tiny"`` is 16x narrower."""
    if size not in DISCRIMINATOR_DIVISORS:
        raise ValueError(f"size must be one of {tuple(DISCRIMINATOR_DIVISORS)}, not {size!r}")
    with torch.device("meta"):
        model = MultiPeriodDiscriminator(version, DISCRIMINATOR_DIVISORS[size])
    return _random_state(model, seed)


def _random_state(model: nn.Module, seed: int) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    state: dict[str, Tensor] = {}
    for key, shape in shapes.items():
        if key.endswith("weight_g"):
            continue  # filled from its weight_v below
        state[key] = _draw(key, shape, shapes, gen)
        if key.endswith("weight_v"):
            v = state[key]
            g_key = key[: -len("weight_v")] + "weight_g"
            state[g_key] = v.flatten(1).norm(dim=1).view(shapes[g_key])
    for key in shapes:
        if key.endswith("_codebook.embed_avg"):
            state[key] = state[key[: -len("embed_avg")] + "embed"].clone()
    return {k: state[k] for k in shapes}  # state-dict order


def _fan_in(shape: tuple[int, ...]) -> int:
    return max(1, math.prod(shape[1:]))


def _uniform(shape: tuple[int, ...], bound: float, gen: torch.Generator) -> Tensor:
    return (torch.rand(shape, generator=gen) * 2 - 1) * bound


def _draw(key: str, shape: tuple[int, ...], shapes: dict[str, tuple[int, ...]], gen: torch.Generator) -> Tensor:
    name = key.rsplit(".", 1)[-1]
    if key.endswith("_codebook.inited"):
        return torch.ones(shape)
    if key.endswith("_codebook.cluster_size"):
        return 0.5 + torch.rand(shape, generator=gen)
    if key.endswith("_codebook.embed"):
        return _uniform(shape, math.sqrt(6 / shape[1]), gen)  # kaiming-uniform, as upstream's init
    if key.endswith("_codebook.embed_avg"):
        return torch.zeros(shape)  # replaced by a copy of embed just below
    if name == "gamma":
        return torch.ones(shape)
    if name == "beta":
        return torch.zeros(shape)
    if name.startswith("emb_rel_"):
        return torch.randn(shape, generator=gen) * shape[-1] ** -0.5
    if key == "prelu.weight":
        return torch.full(shape, 0.25)
    if key.endswith("text_embedding.weight"):
        return torch.randn(shape, generator=gen)
    if name in ("weight", "weight_v"):
        return _uniform(shape, 1 / math.sqrt(_fan_in(shape)), gen)
    if name == "bias":
        prefix = key[: -len("bias")]
        weight_shape = shapes.get(prefix + "weight") or shapes.get(prefix + "weight_v") or (shape[0], 1)
        return _uniform(shape, 1 / math.sqrt(_fan_in(weight_shape)), gen)
    raise KeyError(f"no random initialiser for {key!r}")
