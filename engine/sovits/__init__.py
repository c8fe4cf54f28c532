"""SoVITS v2 / v2Pro / v2ProPlus: our PyTorch port of upstream's ``SynthesizerTrn`` and its discriminator."""

from engine.sovits.config import SoVITSConfig
from engine.sovits.discriminator import MultiPeriodDiscriminator
from engine.sovits.layers import fold_weight_norm, unfold_weight_norm
from engine.sovits.model import Prior, SoVITS

__all__ = [
    "MultiPeriodDiscriminator",
    "Prior",
    "SoVITS",
    "SoVITSConfig",
    "fold_weight_norm",
    "unfold_weight_norm",
]
