"""Build a ready-to-run SoVITS from an official ``.pth`` (file reading itself lives in engine.checkpoints)."""

from __future__ import annotations

from pathlib import Path

import torch

from engine.checkpoints import SoVITSCheckpoint, load_sovits_checkpoint
from engine.sovits.config import SoVITSConfig
from engine.sovits.model import SoVITS


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
    model = SoVITS(config, with_posterior=with_posterior)
    model.load_weights(checkpoint.weight)
    model = model.to(device=device, dtype=dtype)
    return model.for_inference() if inference else model


def load_sovits(path: Path, **kwargs: object) -> SoVITS:
    return sovits_from_checkpoint(load_sovits_checkpoint(Path(path)), **kwargs)  # type: ignore[arg-type]
