"""The model steps around T2S: text features (phones + BERT), the voice's timbre, the vocoder."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import torch

from engine.errors import BadText
from engine.params import RenderParams
from engine.profile import VoiceProfile
from engine.rendering.planning import PlannedChunk, feature_groups_of
from engine.rendering.results import Timings
from engine.runtime import Models
from engine.text_features import text_features_many


def compute_features(models: Models, batch: list[PlannedChunk], todo: list[PlannedChunk], params: RenderParams,
                     timings: Timings) -> None:  # fmt: skip
    """Phones and BERT features of ``batch``, computed with the rest of their feature groups
    (see :func:`~engine.rendering.planning.feature_groups_of`)."""
    group = feature_groups_of(batch, todo)
    if not group:
        return
    t0 = time.perf_counter()
    found = text_features_many(models.bert, [c.report.text for c in group], params.text_lang)
    for chunk, features in zip(group, found, strict=True):
        chunk.features = features
        chunk.report.phones = len(features.phone_ids)
        if not features.phone_ids:
            raise BadText(f"chunk {chunk.report.index + 1} ({chunk.report.text!r}) has nothing to read aloud")
    timings.bert_s += time.perf_counter() - t0


@torch.inference_mode()
def timbre(models: Models, profile: VoiceProfile) -> torch.Tensor:
    """The voice's global timbre embedding, on the models' device."""
    m = models
    specs = [s.to(m.device, m.dtype) for s in profile.refer_specs]
    embs = [e.to(m.device, m.dtype) for e in profile.sv_embs] if profile.sv_embs else None
    if m.sovits.config.is_pro and embs is None:
        raise BadText("this voice has no speaker vector; enroll it again with the v2Pro models")
    return m.sovits.timbre(specs, embs if m.sovits.config.is_pro else None)


def vocode(models: Models, codes: torch.Tensor, chunk: PlannedChunk, params: RenderParams, ge: torch.Tensor,
           timings: Timings, first_frames: int | None = None, start_frame: int = 0) -> Iterator[np.ndarray]:  # fmt: skip
    """A chunk's waveform, window by window (see ``SoVITS.vocode_windows``); SoVITS time is counted
    per window, so a consumer's time between windows does not count."""
    m = models
    assert chunk.features is not None
    t0 = time.perf_counter()
    with torch.inference_mode():
        generator = torch.Generator(device=m.device).manual_seed(chunk.seed)
        phones = torch.tensor(chunk.features.phone_ids, dtype=torch.long, device=m.device)[None]
        prior = m.sovits.prior(codes.to(m.device)[None, None], phones, ge, params.speed_factor)
        z = m.sovits.latent(prior, ge, params.noise_scale, generator)
        windows = m.sovits.vocode_windows(z, ge, "auto", first_frames=first_frames, start_frame=start_frame)
    while True:
        with torch.inference_mode():
            wav = next(windows, None)
        if wav is None:
            break
        # The generator ends in tanh, so samples never leave [-1, 1]; no whole-chunk peak is needed.
        part = wav[0, 0].float().cpu().numpy().astype(np.float32, copy=False)
        timings.sovits_s += time.perf_counter() - t0
        yield part
        t0 = time.perf_counter()
    timings.sovits_s += time.perf_counter() - t0
