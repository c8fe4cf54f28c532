"""Build a ready-to-run SoVITS from an official ``.pth`` (file reading itself lives in engine.checkpoints)."""

from __future__ import annotations

from pathlib import Path

import torch

from engine.checkpoints import SoVITSCheckpoint, load_sovits_checkpoint
from engine.sovits.config import SoVITSConfig
from engine.sovits.model import ENC_Q_PREFIX, SoVITS


def sovits_from_checkpoint(
    checkpoint: SoVITSCheckpoint,
    *,
    with_posterior: bool | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    inference: bool = True,
) -> SoVITS:
    """``with_posterior=None`` builds ``enc_q`` only when the file carries it (pretrained files)."""
    config = SoVITSConfig.from_checkpoint_config(checkpoint.config, checkpoint.version)
    if with_posterior is None:
        with_posterior = checkpoint.has_posterior_encoder
    model = build_sovits(config, checkpoint.weight, with_posterior=with_posterior)
    model = model.to(device=device, dtype=dtype)
    return model.for_inference() if inference else model


def build_sovits(config: SoVITSConfig, weight: dict[str, torch.Tensor], with_posterior: bool = False) -> SoVITS:
    """A model holding ``weight``; parameters are allocated empty (no initialisers run) unless some
    must keep a fresh initialisation (``enc_q`` requested but absent from the weights)."""
    fresh_posterior = with_posterior and not any(k.startswith(ENC_Q_PREFIX) for k in weight)
    if fresh_posterior:
        model = SoVITS(config, with_posterior=True)
    else:
        with torch.device("meta"):
            model = SoVITS(config, with_posterior=with_posterior)
        model = model.to_empty(device="cpu")
    model.load_weights(weight)
    return model


def load_sovits(path: Path, **kwargs: object) -> SoVITS:
    return sovits_from_checkpoint(load_sovits_checkpoint(Path(path)), **kwargs)  # type: ignore[arg-type]
