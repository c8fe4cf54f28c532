"""Enrollment: a 3-10 s reference clip and its transcript -> a :class:`VoiceProfile`.

Follows upstream's ``TTS_infer_pack/TTS.py`` reference handling (MODEL.md section 5): the prompt
semantic tokens come from HuBERT on the clip resampled to 16 kHz with soxr (as ``librosa.load``
does) plus 0.6 s of silence; the timbre reference is the linear spectrogram of the clip at 32 kHz;
v2Pro/ProPlus add a speaker vector of the same audio at 16 kHz (torchaudio's sinc resampler).
"""

from __future__ import annotations

import torch

from engine import audio
from engine.errors import BadReference
from engine.profile import VoiceProfile
from engine.runtime import Models
from engine.text_features import TextFeatures, text_features

MIN_SECONDS, MAX_SECONDS = 3.0, 10.0  # upstream refuses references outside 3-10 s (48000..160000 at 16 kHz)
SILENCE_RMS = 1e-3  # about -60 dBFS: nothing a model could take a voice from
SENTENCE_ENDS = set(",.;?!、，。？！；：…")


def check_reference(wav16k: torch.Tensor, label: str = "the reference") -> None:
    seconds = wav16k.numel() / audio.SSL_RATE
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise BadReference(
            f"{label} is {seconds:.1f} s long; it must be between {MIN_SECONDS:.0f} and {MAX_SECONDS:.0f} s "
            "(cut a clean 3-10 s sentence out of your recording)"
        )
    rms = float(wav16k.float().pow(2).mean().sqrt())
    if rms < SILENCE_RMS:
        raise BadReference(f"{label} is silent (RMS {rms:.1e}); record yourself reading the transcript")


def prompt_text_for(transcript: str, language: str) -> str:
    """Upstream strips newlines and ends the transcript with a sentence mark when it has none."""
    text = transcript.strip("\n").strip()
    if not text:
        raise BadReference("the transcript is empty; type exactly what the reference recording says")
    if text[-1] not in SENTENCE_ENDS:
        text += "." if language == "en" else "。"
    return text


@torch.inference_mode()
def reference_spectrogram(source: audio.AudioSource, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(spectrogram [1, 1025, frames] of the 32 kHz clip, that clip [T]); loud clips scaled as upstream."""
    wav32k, _ = audio.load_audio(source, audio.SAMPLE_RATE)
    peak = float(wav32k.abs().max())
    if peak > 1.0:
        wav32k = wav32k / min(2.0, peak)
    spec = audio.spectrogram(wav32k[None])
    return spec.to(device, dtype), wav32k


@torch.inference_mode()
def enroll(
    models: Models,
    reference: audio.AudioSource,
    transcript: str,
    language: str,
    aux_references: list[audio.AudioSource] | None = None,
) -> VoiceProfile:
    """Everything a voice needs, computed once: prompt tokens, timbre references, prompt phones + BERT."""
    wav16k, _ = audio.load_audio(reference, audio.SSL_RATE, hq=True)
    check_reference(wav16k)
    ssl = models.hubert.prompt_features(wav16k.to(models.device))
    prompt_semantic = models.sovits.extract_latent(ssl.to(models.dtype))[0, 0].to("cpu", torch.int64)

    specs, sv_embs = [], []
    for i, source in enumerate([reference, *(aux_references or [])]):
        spec, wav32k = reference_spectrogram(source, models.device, models.dtype)
        if i > 0:
            check_reference(audio.resample(wav32k, audio.SAMPLE_RATE, audio.SSL_RATE), f"extra reference {i}")
        specs.append(spec.cpu())
        if models.speaker is not None:
            sv_embs.append(models.speaker.embed(audio.resample(wav32k, audio.SAMPLE_RATE, audio.SSL_RATE)).cpu())

    prompt_text = prompt_text_for(transcript, language)
    features: TextFeatures = text_features(models.bert, prompt_text, language)
    return VoiceProfile(
        prompt_semantic=prompt_semantic,
        refer_specs=specs,
        prompt_phone_ids=features.phone_ids,
        prompt_bert=features.bert.float().cpu(),
        sv_embs=sv_embs or None,
        prompt_text=prompt_text,
        prompt_lang=language,
        model_version=models.version,
        model_id=models.model_id,
    )
