"""Turn rendered float audio into the stored file: the one path every result takes.

Order (the labelling rules ask for it, and each step must not undo the previous one):
explicit label -> loudness -> watermark -> encode -> AIGC metadata -> optional C2PA signature.
The watermark comes after loudness so a level change cannot weaken it and before encoding so the
stored file carries it; the metadata comes after encoding because it lives in the container, and
a C2PA manifest comes last because it hashes everything before it.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from contracts import FORMATS
from engine.errors import EngineError
from engine.watermark import labels, metadata
from engine.watermark.embed import embed
from engine.watermark.keys import Keyring
from engine.watermark.labels import AigcLabel
from engine.watermark.pattern import resample

C2PA_FORMATS = ("wav", "flac", "mp3")  # what the C2PA SDK embeds into; Ogg files go unsigned
PEAK_DBFS = -1.0
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def export_audio(audio: np.ndarray, sample_rate: int, fmt: str, *, loudness_lufs: float | None = None,
                 keyring: Keyring | None = None, payload: bytes | None = None,
                 label: AigcLabel | str | None = None, explicit_label: str = "none",
                 c2pa_signer: object | None = None) -> bytes:
    """Stored bytes for ``audio`` (float, mono or samples x channels) in ``fmt`` (wav, flac, ogg, mp3).

    ``keyring`` and ``payload`` together turn the watermark on (the keyring's primary key marks);
    without a keyring the audio is not marked, which only tests that study raw output should do.
    ``label`` is the AIGC label to write, or a job id to build the default one from. The label's
    keyed hash (ReservedCode1) needs the keyring too. ``c2pa_signer`` (engine.watermark.c2pa.Signer,
    see ``load_signer``) adds a signed C2PA manifest last, to WAV, FLAC and MP3.
    """
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise EngineError(f"unknown audio format {fmt!r}; choose one of {', '.join(FORMATS)}")
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    x = labels.apply_explicit_label(x, sample_rate, explicit_label)
    if loudness_lufs is not None:
        x = normalize_loudness(x, sample_rate, loudness_lufs)
    x = limit_peaks(x, sample_rate)
    if keyring is not None:
        if payload is None:
            raise EngineError("watermarking needs a payload (the job's mark)")
        x = embed(x, sample_rate, keyring.primary, payload)
    data = encode(x, sample_rate, fmt)
    aigc = None
    if label is not None:
        aigc = label if isinstance(label, AigcLabel) else AigcLabel(produce_id=str(label))
        if keyring is not None:
            aigc = aigc.signed(keyring.primary, metadata.content_digest(data))
        data = metadata.write_label(data, aigc)
    if c2pa_signer is not None and fmt in C2PA_FORMATS:
        from engine.watermark import c2pa

        data = c2pa.sign(data, c2pa_signer, key_id=keyring.primary.id if keyring is not None else None, label=aigc)
    return data


def read_label(data: bytes) -> AigcLabel | None:
    """The AIGC label stored in a file's metadata, if any."""
    return metadata.read_label(data)


def verify_label(data: bytes, keyring: Keyring) -> bool:
    """True when the label's keyed hash matches this file's audio and label under one of our keys."""
    label = metadata.read_label(data)
    return label is not None and label.verify(keyring, metadata.content_digest(data))


def normalize_loudness(x: np.ndarray, sample_rate: int, target_lufs: float) -> np.ndarray:
    """Gain to ``target_lufs`` integrated loudness (ITU-R BS.1770); silent or very short audio is kept."""
    import pyloudnorm

    if x.shape[0] < int(0.5 * sample_rate):
        return x
    loudness = pyloudnorm.Meter(sample_rate).integrated_loudness(x)
    if not np.isfinite(loudness):
        return x
    return x * 10 ** ((target_lufs - loudness) / 20)


def limit_peaks(x: np.ndarray, sample_rate: int, ceiling_dbfs: float = PEAK_DBFS,
                window_s: float = 0.005) -> np.ndarray:
    """Smooth look-ahead limiter: the gain dips over a few ms around peaks above the ceiling."""
    ceiling = 10 ** (ceiling_dbfs / 20)
    level = np.abs(x) if x.ndim == 1 else np.abs(x).max(axis=1)
    if level.size == 0 or level.max() <= ceiling:
        return x
    needed = np.minimum(1.0, ceiling / np.maximum(level, 1e-12))
    width = 2 * max(1, int(window_s * sample_rate)) + 1
    # a moving average of a moving minimum of the same width never exceeds the needed gain
    gain = uniform_filter1d(minimum_filter1d(needed, width, mode="nearest"), width, mode="nearest")
    gain = np.minimum(gain, needed)
    return x * (gain if x.ndim == 1 else gain[:, None])


def encode(x: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """Container bytes through soundfile; Opus only takes a few rates, so OGG is resampled to 48 kHz."""
    buf = io.BytesIO()
    x = np.clip(x, -1.0, 1.0)
    if fmt == "wav":
        sf.write(buf, x, sample_rate, format="WAV", subtype="PCM_16")
    elif fmt == "flac":
        sf.write(buf, x, sample_rate, format="FLAC", subtype="PCM_16")
    elif fmt == "ogg":
        rate = sample_rate if sample_rate in OPUS_RATES else 48000
        y = x if rate == sample_rate else _resample_any(x, sample_rate, rate)
        sf.write(buf, np.clip(y, -1.0, 1.0), rate, format="OGG", subtype="OPUS")
    elif fmt == "mp3":
        sf.write(buf, x, sample_rate, format="MP3", subtype="MPEG_LAYER_III")
    else:
        raise EngineError(f"unknown audio format {fmt!r}")
    return buf.getvalue()


def _resample_any(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if x.ndim == 1:
        return resample(x, rate_in, rate_out)
    return np.stack([resample(c, rate_in, rate_out) for c in x.T], axis=1)
