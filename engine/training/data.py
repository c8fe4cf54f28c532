"""Training items from (audio, transcript, language), as upstream's WebUI data preparation makes them.

Per item (MODEL.md section 8): phones + BERT of the transcript (``1-get-text``); the clip at 32 kHz
normalised to a fixed peak, HuBERT on that at 16 kHz without the feature extractor's normalisation
(``2-get-hubert-wav32k``); speaker vector for Pro (``2-get-sv``); semantic codes from the
**pretrained** SoVITS (``3-get-semantic``). The s2 trainer also needs the linear spectrogram of
the normalised 32 kHz clip, which upstream's data loader computes from ``5-wav32k``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine import audio
from engine.errors import BadReference, BadText
from engine.features.bert import BertFeatures
from engine.features.hubert import HubertFeatures
from engine.features.speaker import SpeakerEncoder
from engine.sovits.model import SoVITS
from engine.text_features import text_features

MIN_SECONDS = 1.0  # shorter than ~1.5 SoVITS training slices (0.64 s) teaches nothing
MAX_SECONDS = 54.0  # upstream's s1 max_sec: longer utterances are dropped from GPT training
MAX_PEAK = 2.2  # upstream skips clips whose peak is above this (clipped or broken float files)
SILENCE_RMS = 1e-3  # about -60 dBFS
# 2-get-hubert-wav32k: x / peak * (0.95 * 0.5 * scale) + 0.5 * scale * x; the int16 copy uses 32768,
# the HuBERT input 1145.14 (HuBERT's first GroupNorm makes the scale nearly irrelevant).
PEAK_TARGET, PEAK_MIX = 0.95, 0.5
WAV_SCALE, HUBERT_SCALE = 32768.0, 1145.14
MAX_PHONES_PER_SECOND = 50 / 2.5  # upstream drops items with more than max_sec * 50 / 2.5 phones

Item = tuple[bytes, str, str]  # (audio file bytes, transcript, language)


@dataclass
class TrainItem:
    wav: torch.Tensor  # [T] 32 kHz, as upstream's 5-wav32k int16 file reads back (/ 32768)
    spec: torch.Tensor  # [1025, frames] linear magnitude spectrogram of ``wav``
    ssl: torch.Tensor  # [768, frames] HuBERT features, aligned to the spectrogram frames
    codes: torch.Tensor  # [frames // 2] int64 semantic tokens from the pretrained SoVITS
    phone_ids: torch.Tensor  # [P] int64
    bert: torch.Tensor  # [1024, P]
    sv_emb: torch.Tensor | None  # [20480] for v2Pro / v2ProPlus


def normalise_peak(wav: torch.Tensor, scale: float) -> torch.Tensor:
    """Upstream's mix of a peak-normalised copy and the original: peak ~ 0.95 * scale for clips near 1."""
    peak = wav.abs().max()
    return wav / peak * (PEAK_TARGET * PEAK_MIX * scale) + (1 - PEAK_MIX) * scale * wav


def check_clip(wav32k: torch.Tensor, label: str) -> None:
    seconds = wav32k.numel() / audio.SAMPLE_RATE
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise BadReference(f"{label} is {seconds:.1f} s long; fine-tuning needs clips of "
                           f"{MIN_SECONDS:.0f} to {MAX_SECONDS:.0f} s")  # fmt: skip
    rms = float(wav32k.pow(2).mean().sqrt())
    if rms < SILENCE_RMS:
        raise BadReference(f"{label} is silent (RMS {rms:.1e}); it has no voice to learn from")
    peak = float(wav32k.abs().max())
    if peak > MAX_PEAK:
        raise BadReference(f"{label} peaks at {peak:.2f}, far above full scale; export it again as ordinary audio")


@torch.no_grad()
def hubert_content(hubert: HubertFeatures, wav32k: torch.Tensor) -> torch.Tensor:
    """[768, T] at 50 Hz: HuBERT on the peak-scaled clip resampled with soxr HQ (librosa's default).

    The data-prep script calls the bare model, bypassing the feature extractor's normalisation.
    """
    wav16k = audio.resample_hq(normalise_peak(wav32k, HUBERT_SCALE), audio.SAMPLE_RATE, audio.SSL_RATE)
    model = hubert.model
    hidden = model(wav16k[None].to(model.device, model.dtype)).last_hidden_state
    return hidden[0].transpose(0, 1).float().cpu()


def align_frames(ssl: torch.Tensor, frames: int) -> torch.Tensor:
    """HuBERT gives a frame or so fewer than the spectrogram: repeat the last one (as upstream's loader
    does) or cut, so both run at the same 50 Hz grid."""
    if ssl.shape[-1] < frames:
        ssl = F.pad(ssl[None], (0, frames - ssl.shape[-1]), mode="replicate")[0]
    return ssl[:, :frames]


def text_part(bert: BertFeatures, transcript: str, language: str, label: str) -> tuple[torch.Tensor, torch.Tensor]:
    text = transcript.strip()
    if not text:
        raise BadText(f"the transcript of {label} is empty; type exactly what the recording says")
    try:
        features = text_features(bert, text, language)
    except (ValueError, KeyError) as exc:
        raise BadText(f"the transcript of {label} cannot be read as {language!r} text ({exc})") from exc
    if not features.phone_ids:
        raise BadText(f"the transcript of {label} has nothing that can be spoken: {text!r}")
    if len(features.phone_ids) > MAX_SECONDS * MAX_PHONES_PER_SECOND:
        raise BadText(f"the transcript of {label} is too long ({len(features.phone_ids)} phones)")
    return torch.tensor(features.phone_ids, dtype=torch.int64), features.bert.float().cpu()


def prepare_item(item: Item, index: int, sovits: SoVITS, hubert: HubertFeatures, bert: BertFeatures,
                 speaker: SpeakerEncoder | None) -> TrainItem:  # fmt: skip
    data, transcript, language = item
    label = f"recording {index + 1}"
    wav32k, _ = audio.load_audio(data, audio.SAMPLE_RATE)
    check_clip(wav32k, label)
    phone_ids, bert_feats = text_part(bert, transcript, language, label)
    # what the trainer reads back from 5-wav32k: int16 (truncated, as numpy's astype) / 32768
    wav = normalise_peak(wav32k, WAV_SCALE).clamp(-32768, 32767).trunc() / WAV_SCALE
    spec = audio.spectrogram(wav)
    ssl = align_frames(hubert_content(hubert, wav32k), spec.shape[-1])
    with torch.no_grad():
        codes = sovits.extract_latent(ssl[None])[0, 0].to("cpu", torch.int64)
    sv_emb = None
    if speaker is not None:
        sv_emb = speaker.embed(audio.resample(wav, audio.SAMPLE_RATE, audio.SSL_RATE)).reshape(-1).float().cpu()
    return TrainItem(wav, spec, ssl, codes, phone_ids, bert_feats, sv_emb)


def prepare_items(items: Sequence[Item], sovits: SoVITS, hubert: HubertFeatures, bert: BertFeatures,
                  speaker: SpeakerEncoder | None) -> list[TrainItem]:  # fmt: skip
    if not items:
        raise BadReference("fine-tuning needs at least one recording with its transcript")
    return [prepare_item(item, i, sovits, hubert, bert, speaker) for i, item in enumerate(items)]
