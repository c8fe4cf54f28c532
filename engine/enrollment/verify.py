"""Speaker checks: consent recording vs enrollment takes, several speakers among the takes, A/B similarity.

The embedder is the v2Pro ERes2NetV2 speaker model when its checkpoint is present (its 192-d
pooled embedding), else Resemblyzer, whose weights ship inside its PyPI package. Scores are
cosine similarities of L2-normalised embeddings; thresholds come from ``calibrate.py``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from engine.enrollment.messages import gate_message
from engine.enrollment.vad import to_vad_rate

# Equal-error-rate thresholds measured by `python -m engine.enrollment.calibrate` on generated speakers.
RESEMBLYZER_THRESHOLD = 0.88  # EER 7.9 % there (2026-12-02); real rooms may need a lower one
# ERes2NetV2 could not be calibrated here (no weights); 0.5 is a common cosine operating point for it.
ERES2NET_THRESHOLD = 0.50


class SpeakerEmbedder(Protocol):
    name: str
    threshold: float

    def embed(self, samples: np.ndarray, sample_rate: int) -> np.ndarray: ...


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    return v / max(float(np.linalg.norm(v)), 1e-12)


class ResemblyzerEmbedder:
    """Resemblyzer's GE2E encoder (256-d), its ``pretrained.pt`` read from site-packages."""

    name = "resemblyzer-0.1.4"

    def __init__(self, threshold: float = RESEMBLYZER_THRESHOLD) -> None:
        with warnings.catch_warnings():  # it imports scipy.ndimage.morphology, deprecated in SciPy 1.x
            warnings.simplefilter("ignore", DeprecationWarning)
            from resemblyzer import VoiceEncoder

        self.threshold = threshold
        self._encoder = VoiceEncoder("cpu", verbose=False)

    def embed(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        from resemblyzer import preprocess_wav

        wav = preprocess_wav(to_vad_rate(samples, sample_rate), source_sr=16000)
        if wav.size < 1600:  # its VAD trimmed nearly everything: embed the untrimmed audio instead
            wav = to_vad_rate(samples, sample_rate)
        return _unit(self._encoder.embed_utterance(wav))


class ERes2NetEmbedder:
    """The v2Pro speaker-verification model's pooled embedding (``ERes2NetV2.forward``)."""

    name = "eres2netv2w24s4ep4"

    def __init__(self, checkpoint: str | os.PathLike, threshold: float = ERES2NET_THRESHOLD) -> None:
        from engine.features.speaker import load_speaker_model

        self.threshold = threshold
        self._model = load_speaker_model(checkpoint)

    def embed(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        import torch

        from engine import audio

        wav = torch.from_numpy(to_vad_rate(samples, sample_rate))[None]
        with torch.inference_mode():
            return _unit(self._model(audio.fbank(wav)).numpy())


def load_embedder(
    sv_checkpoint: str | os.PathLike | None = None, threshold: float | None = None
) -> SpeakerEmbedder:
    """ERes2NetV2 when ``sv_checkpoint`` (models/sv/pretrained_eres2netv2w24s4ep4.ckpt) exists, else Resemblyzer.

    ``threshold`` overrides the model's default same-speaker threshold (settings may set one per model).
    """
    if sv_checkpoint and Path(sv_checkpoint).is_file():
        return ERes2NetEmbedder(sv_checkpoint, ERES2NET_THRESHOLD if threshold is None else threshold)
    return ResemblyzerEmbedder(RESEMBLYZER_THRESHOLD if threshold is None else threshold)


@dataclass(frozen=True)
class Audio:
    """A named recording: mono samples and their rate."""

    id: str
    samples: np.ndarray = field(repr=False)
    sample_rate: int


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(_unit(a), _unit(b)))


@dataclass
class SpeakerCheck:
    """Outcome of a speaker check; ``to_dict`` is JSON-ready and is stored with the voice."""

    passed: bool
    score: float
    threshold: float
    model: str
    per_take: dict[str, float]
    outliers: list[str]
    message: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _embed_all(takes: list[Audio], embedder: SpeakerEmbedder) -> dict[str, np.ndarray]:
    if not takes:
        raise ValueError("a speaker check needs at least one take")
    return {t.id: embedder.embed(t.samples, t.sample_rate) for t in takes}


def check_one_speaker(takes: list[Audio], embedder: SpeakerEmbedder, language: str) -> SpeakerCheck:
    """Each take against the mean of the others: any below the threshold means several speakers."""
    emb = _embed_all(takes, embedder)
    per_take = {}
    for tid, e in emb.items():
        others = [v for k, v in emb.items() if k != tid]
        per_take[tid] = round(cosine(e, np.mean(others, axis=0)), 4) if others else 1.0
    outliers = [tid for tid, s in per_take.items() if s < embedder.threshold]
    score = min(per_take.values())
    message = None if not outliers else gate_message(
        "several_speakers", language, count=len(outliers), takes=", ".join(outliers),
        value=score, threshold=embedder.threshold)
    return SpeakerCheck(not outliers, score, embedder.threshold, embedder.name, per_take, outliers, message)


def verify_consent(
    consent: Audio, takes: list[Audio], embedder: SpeakerEmbedder, language: str
) -> SpeakerCheck:
    """Is the consent statement spoken by the speaker of the takes? Score: consent vs the takes' mean."""
    emb = _embed_all(takes, embedder)
    voice = _unit(np.mean(list(emb.values()), axis=0))
    said = embedder.embed(consent.samples, consent.sample_rate)
    per_take = {tid: round(cosine(said, e), 4) for tid, e in emb.items()}
    score = round(cosine(said, voice), 4)
    passed = score >= embedder.threshold
    message = None if passed else gate_message(
        "consent_speaker", language, value=score, threshold=embedder.threshold)
    return SpeakerCheck(passed, score, embedder.threshold, embedder.name, per_take, [], message)


def verify_enrolled_speaker(
    recordings: list[Audio], enrolled: list[Audio], embedder: SpeakerEmbedder, language: str
) -> SpeakerCheck:
    """Are new recordings (a style, more takes) the voice's enrolled speaker? Each against the mean of
    the enrollment's recordings (its reference and consent); the lowest score decides."""
    voice = _unit(np.mean(list(_embed_all(enrolled, embedder).values()), axis=0))
    per_take = {tid: round(cosine(e, voice), 4) for tid, e in _embed_all(recordings, embedder).items()}
    outliers = [tid for tid, s in per_take.items() if s < embedder.threshold]
    score = min(per_take.values())
    message = None if not outliers else gate_message("other_speaker", language, value=score,
                                                     threshold=embedder.threshold)
    return SpeakerCheck(not outliers, score, embedder.threshold, embedder.name, per_take, outliers, message)


def ab_similarity(recording: Audio, synthesis: Audio, embedder: SpeakerEmbedder) -> dict[str, object]:
    """A/B: how close the clone sounds to the member (cosine of speaker embeddings, 1.0 = identical)."""
    score = cosine(embedder.embed(recording.samples, recording.sample_rate),
                   embedder.embed(synthesis.samples, synthesis.sample_rate))
    return {"similarity": round(score, 4), "model": embedder.name, "threshold": embedder.threshold,
            "same_speaker": score >= embedder.threshold}
