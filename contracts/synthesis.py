"""Synthesis parameters: their names (upstream api_v2's, plus noise_scale and max_retries), bounds
and defaults, in one model that the engine renders with and the API validates against.

Bounds are what a member can usefully ask for, not what the arithmetic tolerates; the API refuses
anything outside them with a 422 naming the field, and the engine refuses the same values:

- top_k 1..100, top_p (0, 1]: upstream's webui sliders; past 100 candidates top_k stops mattering.
- temperature (0, 2]: the webui stops at 1; up to 2 leaves room for livelier readings, beyond that
  the sampler produces babble and the runaway guards only spend retries on it.
- repetition_penalty [1, 2]: below 1 rewards repeats (the loops the guards exist to catch).
- speed_factor 0.5..2, fragment_interval 0..3 s: a little wider than the webui (0.6..1.65, 0.01..1).
- batch_size 1..64: chunks decoded together, bounded by GPU memory rather than by taste.
- seed -1 (draw one per render) or 0..2**32-1: the range every common RNG seeds from (numpy refuses
  more), so a seed a member notes down reproduces elsewhere too.
- noise_scale 0..1: SoVITS' prior noise (upstream 0.5); above 1 the voice turns hoarse.
- max_retries 0..5: how often a chunk the guards reject is redrawn. The server's choice, not the
  member's: :data:`ENGINE_ONLY` keeps it out of the request body.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.vocabulary import SplitMethod, TextLang

MAX_SEED = 2**32 - 1


class SynthesisParams(BaseModel):
    """How to read a text out. Every field has a default; unknown names are an error."""

    model_config = ConfigDict(extra="forbid")

    text_lang: TextLang = "zh"
    top_k: int = Field(15, ge=1, le=100)
    top_p: float = Field(1.0, gt=0, le=1)
    temperature: float = Field(1.0, gt=0, le=2)
    repetition_penalty: float = Field(1.35, ge=1, le=2)
    text_split_method: SplitMethod = "cut5"
    batch_size: int = Field(8, ge=1, le=64)
    speed_factor: float = Field(1.0, ge=0.5, le=2)
    fragment_interval: float = Field(0.3, ge=0, le=3)
    seed: int = Field(-1, ge=-1, le=MAX_SEED)  # -1: a fresh random seed per render
    noise_scale: float = Field(0.5, ge=0, le=1)
    max_retries: int = Field(2, ge=0, le=5)


ENGINE_ONLY = ("max_retries",)
# The parameters a synthesis request may override, each optional (the defaults above apply to the
# rest). text_lang is a request field of its own: it always has a value.
PARAM_NAMES = tuple(name for name in SynthesisParams.model_fields if name not in ENGINE_ONLY + ("text_lang",))


def optional_overrides(names: tuple[str, ...] = PARAM_NAMES) -> dict[str, Any]:
    """``create_model`` field definitions: each parameter as ``T | None = None``, keeping its bounds."""
    fields: dict[str, Any] = {}
    for name in names:
        info = SynthesisParams.model_fields[name]
        bounded = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        fields[name] = (bounded | None, None)
    return fields
