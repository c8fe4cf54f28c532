"""Synthesis parameters as the engine takes them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RenderParams(BaseModel):
    """Synthesis parameters, named as upstream's api_v2 names them (plus noise_scale and max_retries)."""

    model_config = ConfigDict(extra="forbid")

    text_lang: Literal["zh", "all_zh", "en", "auto"] = "zh"
    top_k: int = Field(15, ge=1, le=1024)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    temperature: float = Field(1.0, gt=0.0, le=5.0)
    repetition_penalty: float = Field(1.35, ge=1.0, le=5.0)
    text_split_method: Literal["cut0", "cut1", "cut2", "cut3", "cut4", "cut5"] = "cut5"
    batch_size: int = Field(8, ge=1, le=64)
    speed_factor: float = Field(1.0, ge=0.5, le=2.0)
    fragment_interval: float = Field(0.3, ge=0.0, le=5.0)
    seed: int = Field(-1, ge=-1, le=2**63 - 1)  # -1: a fresh random seed per render
    noise_scale: float = Field(0.5, ge=0.0, le=2.0)
    max_retries: int = Field(2, ge=0, le=5)

    def sound_key(self) -> dict:
        """The parameters that change how a chunk sounds (its cache key), not how it is scheduled."""
        keys = ("text_lang", "top_k", "top_p", "temperature", "repetition_penalty", "speed_factor",
                "fragment_interval", "noise_scale")  # fmt: skip
        key = {k: getattr(self, k) for k in keys}
        if self.seed >= 0:  # a random-seed render accepts any earlier random rendering of the chunk
            key["seed"] = self.seed
        return key
