"""Quality analysis of one take: bytes in, a JSON-ready report with values, thresholds and gates out.

Noise floor and SNR come from the frames silero-vad marks as non-speech (kept a little away from
speech so that word edges do not count as noise); speech power is the power of the speech frames
less that noise. Every failed gate carries an actionable message in the take's language.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pyloudnorm

from engine.enrollment import asr as asr_check
from engine.enrollment.decode import DecodedTake, DecodeLimits, UndecodableTake, decode_take
from engine.enrollment.messages import gate_message
from engine.enrollment.vad import FRAME_SECONDS, gaps_between, speech_probabilities, speech_segments

CLIP_LEVEL = 0.999  # |sample| at or above this counts as clipped (int16 full scale is 0.99997)
NOISE_PROB = 0.3  # frames below this speech probability may be noise ...
NOISE_GUARD_FRAMES = 3  # ... if no speech frame lies within ~0.1 s of them
SNR_CAP_DB = 99.0  # digital silence between words: the SNR is "as good as it gets", not infinite


@dataclass(frozen=True)
class QualityThresholds:
    """Gate thresholds (the service fills them from settings)."""

    min_sample_rate: int = 16000
    min_seconds: float = 2.0
    max_seconds: float = 120.0
    max_clipping_ratio: float = 0.001
    min_loudness_lufs: float = -35.0
    max_noise_floor_dbfs: float = -35.0  # a loud steady background; the SNR gate judges the rest
    min_snr_db: float = 20.0
    min_speech_ratio: float = 0.35
    max_leading_silence: float = 3.0
    max_trailing_silence: float = 3.0
    max_inner_silence: float = 2.5
    max_word_error: float = 0.35
    vad_threshold: float = 0.5


@dataclass
class Gate:
    """One check: ``passed`` is None when it was not checked (no ASR model, nothing to measure)."""

    name: str
    passed: bool | None
    value: float | int | str | None
    threshold: float | int | str | None
    message: str | None = None


@dataclass
class Measurements:
    """What was measured; None where a value does not exist (loudness of silence, SNR without pauses)."""

    format: str
    sample_rate: int
    channels: int
    seconds: float
    clipping_ratio: float
    peak_dbfs: float | None
    loudness_lufs: float | None
    noise_floor_dbfs: float | None
    snr_db: float | None
    speech_ratio: float
    leading_silence: float
    trailing_silence: float
    max_inner_silence: float
    speech_segments: list[tuple[float, float]] = field(default_factory=list)
    transcript: str | None = None


@dataclass
class QualityReport:
    """The machine-readable report; ``to_dict`` is JSON-serialisable (no NaN or infinity)."""

    language: str
    passed: bool
    gates: list[Gate]
    measurements: Measurements | None
    thresholds: QualityThresholds

    @property
    def messages(self) -> list[str]:
        return [g.message for g in self.gates if g.passed is False and g.message]

    @property
    def failed(self) -> list[str]:
        return [g.name for g in self.gates if g.passed is False]

    def gate(self, name: str) -> Gate:
        return next(g for g in self.gates if g.name == name)

    def to_dict(self) -> dict[str, object]:
        return {
            "language": self.language, "passed": self.passed, "failed": self.failed,
            "messages": self.messages, "gates": [asdict(g) for g in self.gates],
            "measurements": asdict(self.measurements) if self.measurements else None,
            "thresholds": asdict(self.thresholds),
        }


def analyse_take(
    data: bytes,
    language: str,
    thresholds: QualityThresholds | None = None,
    limits: DecodeLimits | None = None,
    expected_text: str | None = None,
    transcriber: asr_check.Transcriber | None = None,
) -> QualityReport:
    """Decode ``data`` (bounded by ``limits``), measure it and apply every gate. Never raises on bad audio."""
    thresholds = thresholds or QualityThresholds()
    try:
        take = decode_take(data, limits)
    except UndecodableTake as e:
        return undecodable_report(e, language, thresholds, limits or DecodeLimits())
    return analyse_samples(take, language, thresholds, expected_text, transcriber)


def analyse_samples(
    take: DecodedTake,
    language: str,
    thresholds: QualityThresholds,
    expected_text: str | None = None,
    transcriber: asr_check.Transcriber | None = None,
    probs: np.ndarray | None = None,
) -> QualityReport:
    """The report for already decoded audio; ``probs`` (from :func:`speech_probabilities`) saves a VAD run."""
    probs = speech_probabilities(take.samples, take.sample_rate) if probs is None else probs
    m = measure(take, probs, thresholds.vad_threshold)
    gates = signal_gates(m, thresholds, language)
    gates.append(_words_gate(take, m, thresholds, language, expected_text, transcriber))
    passed = all(g.passed is not False for g in gates)
    return QualityReport(language, passed, gates, m, thresholds)


def measure(take: DecodedTake, probs: np.ndarray, vad_threshold: float = 0.5) -> Measurements:
    x, sr = take.samples, take.sample_rate
    peak = float(np.max(np.abs(x)))
    segments = speech_segments(probs, vad_threshold)
    gaps = gaps_between(segments, take.seconds)
    noise_floor, snr = noise_and_snr(x, sr, probs, vad_threshold)
    return Measurements(
        format=take.format, sample_rate=sr, channels=take.channels, seconds=round(take.seconds, 3),
        clipping_ratio=float(np.mean(np.abs(x) >= CLIP_LEVEL)),
        peak_dbfs=_finite(20 * math.log10(peak) if peak > 0 else None),
        loudness_lufs=_loudness(x, sr),
        noise_floor_dbfs=noise_floor, snr_db=snr,
        speech_ratio=float(np.mean(probs >= vad_threshold)) if probs.size else 0.0,
        leading_silence=round(gaps[0].seconds, 3), trailing_silence=round(gaps[-1].seconds, 3),
        max_inner_silence=round(max((g.seconds for g in gaps[1:-1]), default=0.0), 3),
        speech_segments=[(round(float(s.start), 3), round(float(s.end), 3)) for s in segments],
    )


def frame_powers(x: np.ndarray, sr: int, n_frames: int) -> np.ndarray:
    """Mean power of the samples under each 32 ms VAD frame, at the take's own rate."""
    bounds = np.minimum((np.arange(n_frames + 1) * FRAME_SECONDS * sr).astype(np.int64), x.size)
    sums = np.add.reduceat(np.square(x, dtype=np.float64), bounds[:-1]) if n_frames else np.zeros(0)
    lengths = np.maximum(np.diff(bounds), 1)
    return sums / lengths


def noise_and_snr(
    x: np.ndarray, sr: int, probs: np.ndarray, vad_threshold: float
) -> tuple[float | None, float | None]:
    """(noise floor dBFS, SNR dB) from non-speech frames; (None, None) when the take has no pause."""
    speech = probs >= vad_threshold
    if not speech.any():
        return None, None
    near_speech = np.convolve(speech, np.ones(2 * NOISE_GUARD_FRAMES + 1), mode="same") > 0
    noise = (probs < NOISE_PROB) & ~near_speech
    if noise.sum() < 3:
        return None, None
    powers = frame_powers(x, sr, probs.size)
    p_noise, p_mixed = float(powers[noise].mean()), float(powers[speech].mean())
    floor = 10 * math.log10(p_noise) if p_noise > 0 else None
    p_speech = p_mixed - p_noise
    if p_noise <= 0:
        return floor, SNR_CAP_DB
    snr = 10 * math.log10(p_speech / p_noise) if p_speech > 0 else -SNR_CAP_DB
    return _finite(floor), round(min(snr, SNR_CAP_DB), 2)


def _loudness(x: np.ndarray, sr: int) -> float | None:
    if x.size < int(0.4 * sr):  # pyloudnorm needs one 400 ms gating block
        return None
    with np.errstate(divide="ignore"):
        return _finite(float(pyloudnorm.Meter(sr).integrated_loudness(x.astype(np.float64))))


def _finite(v: float | None) -> float | None:
    return round(v, 2) if v is not None and math.isfinite(v) else None


def _gate(name: str, ok: bool, value: object, threshold: object, key: str, language: str) -> Gate:
    ok = bool(ok)  # comparisons with numpy scalars give numpy booleans, which JSON refuses
    message = None if ok else gate_message(key, language, value=value, threshold=threshold)
    return Gate(name, ok, value, threshold, message)  # type: ignore[arg-type]


def signal_gates(m: Measurements, t: QualityThresholds, language: str) -> list[Gate]:
    """Every gate that needs only the signal, in the order a member should fix them."""
    short = m.seconds < t.min_seconds
    gates = [
        _gate("sample_rate", m.sample_rate >= t.min_sample_rate, m.sample_rate, t.min_sample_rate,
              "sample_rate", language),
        _gate("duration", not short and m.seconds <= t.max_seconds, m.seconds,
              t.min_seconds if short else t.max_seconds, "duration_short" if short else "duration_long", language),
        _gate("clipping", m.clipping_ratio <= t.max_clipping_ratio, m.clipping_ratio, t.max_clipping_ratio,
              "clipping", language),
        _gate("speech_ratio", m.speech_ratio >= t.min_speech_ratio, round(m.speech_ratio, 3),
              t.min_speech_ratio, "speech_ratio", language),
    ]
    if m.loudness_lufs is None:
        gates.append(_gate("loudness", False, -120.0, t.min_loudness_lufs, "loudness", language))
    else:
        gates.append(_gate("loudness", m.loudness_lufs >= t.min_loudness_lufs, m.loudness_lufs,
                           t.min_loudness_lufs, "loudness", language))
    gates += _noise_gates(m, t, language)
    gates += [
        _gate("leading_silence", m.leading_silence <= t.max_leading_silence, m.leading_silence,
              t.max_leading_silence, "leading_silence", language),
        _gate("trailing_silence", m.trailing_silence <= t.max_trailing_silence, m.trailing_silence,
              t.max_trailing_silence, "trailing_silence", language),
        _gate("inner_silence", m.max_inner_silence <= t.max_inner_silence, m.max_inner_silence,
              t.max_inner_silence, "inner_silence", language),
    ]
    return gates


def _noise_gates(m: Measurements, t: QualityThresholds, language: str) -> list[Gate]:
    if m.speech_ratio < t.min_speech_ratio:  # no speech to measure against: the speech gate says why
        return [Gate("noise_floor", None, m.noise_floor_dbfs, t.max_noise_floor_dbfs),
                Gate("snr", None, None, t.min_snr_db)]
    floor = m.noise_floor_dbfs
    floor_gate = (
        Gate("noise_floor", True, floor, t.max_noise_floor_dbfs) if floor is None
        else _gate("noise_floor", floor <= t.max_noise_floor_dbfs, floor, t.max_noise_floor_dbfs,
                   "noise_floor", language)
    )
    if m.snr_db is None:
        snr_gate = Gate("snr", False, None, t.min_snr_db, gate_message("snr_unmeasured", language))
    else:
        snr_gate = _gate("snr", m.snr_db >= t.min_snr_db, m.snr_db, t.min_snr_db, "snr", language)
    return [floor_gate, snr_gate]


def _words_gate(
    take: DecodedTake, m: Measurements, t: QualityThresholds, language: str,
    expected_text: str | None, transcriber: asr_check.Transcriber | None,
) -> Gate:
    if transcriber is None or not expected_text:
        return Gate("words", None, "not checked", t.max_word_error)
    m.transcript = transcriber.transcribe(take.samples, take.sample_rate, language)
    error = round(asr_check.error_rate(expected_text, m.transcript, language), 3)
    return _gate("words", error <= t.max_word_error, error, t.max_word_error, "words", language)


def undecodable_report(
    e: UndecodableTake, language: str, t: QualityThresholds, limits: DecodeLimits
) -> QualityReport:
    bounds: dict[str, tuple[object, str]] = {
        "size": (limits.max_bytes, "size"), "channels": (limits.max_channels, "channels"),
        "sample_rate": (limits.min_sample_rate, "sample_rate"),
        "duration": (limits.max_seconds, "duration_long"),
    }
    if e.gate in bounds:
        threshold, key = bounds[e.gate]
        gate = Gate(e.gate, False, e.value, threshold,  # type: ignore[arg-type]
                    gate_message(key, language, value=e.value, threshold=threshold))
    else:
        gate = Gate("format", False, None, "wav/flac/ogg/mp3", gate_message("format", language, detail=str(e)))
    return QualityReport(language, False, [gate], None, t)
