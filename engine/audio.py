"""Signal work in one place: loading, resampling, spectrograms, mel and Kaldi fbank.

Every function matches the upstream GPT-SoVITS call it replaces (see MODEL.md 3.5, 4.1, 4.3 and 5);
the parity goldens in ``audio_golden`` and ``sv_golden`` pin them down.
"""

from __future__ import annotations

import io
import math
import os
from functools import cache

import numpy as np
import soundfile
import soxr
import torch
import torch.nn.functional as F
import torchaudio

from engine.errors import BadReference

# hard-coded audio hyperparameters of GPT-SoVITS v2
SAMPLE_RATE = 32000  # SoVITS audio, spectrograms, the rendered output
SSL_RATE = 16000  # HuBERT and the speaker-verification model
N_FFT = 2048
HOP = 640  # 50 spectrogram frames per second; one semantic token = 2 frames
WIN = 2048
N_MELS = 128
N_FREQS = N_FFT // 2 + 1  # 1025 linear-spectrogram bins
FBANK_BINS = 80  # Kaldi fbank bins of the speaker model
SPEC_EPS = 1e-8  # added to |X|^2 before the square root, as upstream does
LOG_MEL_FLOOR = 1e-5  # mel energies are clamped here before the log

AudioSource = str | os.PathLike | bytes


def load_audio(source: AudioSource, sr: int | None = None, *, hq: bool = False) -> tuple[torch.Tensor, int]:
    """Read a file (path or bytes) as mono float32 in [-1, 1]; returns ``(wav [T], sample_rate)``.

    Channels are averaged, as both ``torchaudio.load(...).mean(0)`` and ``librosa.load`` do. With ``sr``
    the audio is resampled: torchaudio's sinc resampler by default (the reference spectrogram path),
    soxr "HQ" with ``hq=True`` (what ``librosa.load(path, sr=16000)`` does for the HuBERT prompt).
    Unreadable, empty or non-finite audio raises :class:`BadReference`.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        if len(source) == 0:
            raise BadReference("the reference audio is empty (0 bytes)")
        handle: str | os.PathLike | io.BytesIO = io.BytesIO(bytes(source))
        label = "the uploaded audio"
    else:
        if not os.path.exists(source):
            raise FileNotFoundError(f"no audio file at {os.fspath(source)}")
        handle, label = source, os.fspath(source)
    try:
        data, native_sr = soundfile.read(handle, dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError, TypeError, ValueError) as exc:
        raise BadReference(
            f"could not read {label} as audio ({exc}); use WAV, FLAC, OGG/Opus or MP3"
        ) from exc
    if data.shape[0] == 0:
        raise BadReference(f"{label} contains no samples")
    if not np.isfinite(data).all():
        raise BadReference(f"{label} contains NaN or infinite samples")
    wav = torch.from_numpy(data.mean(axis=1, dtype=np.float32))
    if sr is None or sr == native_sr:
        return wav, int(native_sr)
    wav = resample_hq(wav, native_sr, sr) if hq else resample(wav, native_sr, sr)
    return wav, sr


def resample(wav: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """torchaudio's band-limited sinc resampler (Hann window, width 6, rolloff 0.99), along the last axis.

    This is what upstream TTS uses for the 32 kHz reference and the 16 kHz speaker-model input.
    """
    if orig == new:
        return wav
    return torchaudio.functional.resample(wav, orig, new)


def resample_hq(wav: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """soxr "HQ" along the last axis, with librosa's length rule (zero-padded or cut to ceil(T * new/orig)).

    ``librosa.load(path, sr=16000)`` does exactly this; the HuBERT prompt path depends on it.
    """
    if orig == new:
        return wav
    length = math.ceil(wav.shape[-1] * new / orig)
    rows = wav.detach().to("cpu", torch.float32).reshape(-1, wav.shape[-1]).numpy()
    out = np.zeros((rows.shape[0], length), dtype=np.float32)
    for i, row in enumerate(rows):
        y = soxr.resample(row, orig, new, quality="HQ")[:length]
        out[i, : y.shape[0]] = y
    return torch.from_numpy(out).reshape(*wav.shape[:-1], length).to(wav.device, wav.dtype)


@cache
@torch.inference_mode(False)  # cached for every later caller: never an inference tensor, which training cannot use
def hann_window(win: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Periodic Hann window (``torch.hann_window`` default), cached per device and dtype."""
    return torch.hann_window(win, device=device, dtype=dtype)


def spectrogram(wav: torch.Tensor, n_fft: int = N_FFT, hop: int = HOP, win: int = WIN) -> torch.Tensor:
    """Linear magnitude spectrogram ``sqrt(|STFT|^2 + 1e-8)``: [T] -> [n_fft/2+1, frames], [B, T] -> [B, ...].

    Upstream ``spectrogram_torch(..., center=False)``: reflect-pad (n_fft - hop)/2 samples on each side,
    then an uncentred STFT, so frames = (T + n_fft - hop - n_fft) // hop + 1 (= T / hop for multiples).
    """
    pad = (n_fft - hop) // 2
    if wav.shape[-1] <= pad:
        raise ValueError(f"audio of {wav.shape[-1]} samples is too short for a spectrogram (needs > {pad})")
    padded = F.pad(wav.unsqueeze(-2), (pad, pad), mode="reflect").squeeze(-2)
    window = hann_window(win, wav.device, wav.dtype)
    stft = torch.stft(
        padded, n_fft, hop_length=hop, win_length=win, window=window, center=False, return_complex=True
    )
    return stft.abs().pow(2).add(SPEC_EPS).sqrt()


@cache
@torch.inference_mode(False)  # see hann_window
def mel_filters(
    sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Slaney-scale, Slaney-normalised mel filterbank [n_mels, n_fft/2+1] (librosa's ``filters.mel`` defaults).

    The same triangles as ``torchaudio.functional.melscale_fbanks(norm="slaney", mel_scale="slaney")``,
    but built in float64 as librosa does: torchaudio's float32 construction moves log-mel values near
    the 1e-5 floor by up to ~3e-5, a third of the parity tolerance.
    """
    fmax = sr / 2 if fmax is None else fmax
    freqs = torch.linspace(0, sr / 2, n_fft // 2 + 1, dtype=torch.float64)
    mels = torch.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2, dtype=torch.float64)
    edges = _mel_to_hz(mels)
    widths = edges.diff()
    to_edge = edges[:, None] - freqs[None, :]  # [n_mels + 2, n_freqs]
    rising = -to_edge[:-2] / widths[:-1, None]
    falling = to_edge[2:] / widths[1:, None]
    weights = torch.minimum(rising, falling).clamp(min=0.0)
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # constant energy per band
    return weights.to(device=device, dtype=dtype)


# Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above (27 mels per factor 6.4)
_MEL_LINEAR_HZ = 200.0 / 3
_MEL_LOG_HZ = 1000.0
_MEL_LOG_START = _MEL_LOG_HZ / _MEL_LINEAR_HZ
_MEL_LOG_STEP = math.log(6.4) / 27.0


def _hz_to_mel(hz: float) -> float:
    if hz < _MEL_LOG_HZ:
        return hz / _MEL_LINEAR_HZ
    return _MEL_LOG_START + math.log(hz / _MEL_LOG_HZ) / _MEL_LOG_STEP


def _mel_to_hz(mels: torch.Tensor) -> torch.Tensor:
    linear = mels * _MEL_LINEAR_HZ
    logarithmic = _MEL_LOG_HZ * torch.exp(_MEL_LOG_STEP * (mels - _MEL_LOG_START))
    return torch.where(mels >= _MEL_LOG_START, logarithmic, linear)


def spec_to_mel(
    spec: torch.Tensor,
    sr: int = SAMPLE_RATE,
    n_fft: int = N_FFT,
    n_mels: int = N_MELS,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> torch.Tensor:
    """Log-mel of a magnitude spectrogram: ``log(clamp(filters @ spec, 1e-5))`` (upstream spec_to_mel_torch)."""
    filters = mel_filters(sr, n_fft, n_mels, float(fmin), fmax, spec.device, spec.dtype)
    return torch.log(torch.clamp(filters @ spec, min=LOG_MEL_FLOOR))


def mel_spectrogram(
    wav: torch.Tensor,
    sr: int = SAMPLE_RATE,
    n_fft: int = N_FFT,
    n_mels: int = N_MELS,
    hop: int = HOP,
    win: int = WIN,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> torch.Tensor:
    """Log-mel spectrogram of a waveform (upstream mel_spectrogram_torch, center=False)."""
    return spec_to_mel(spectrogram(wav, n_fft, hop, win), sr, n_fft, n_mels, fmin, fmax)


def fbank(wav: torch.Tensor, sr: int = SSL_RATE, n_bins: int = FBANK_BINS) -> torch.Tensor:
    """Kaldi log-mel fbank per row: [T] -> [frames, 80], [B, T] -> [B, frames, 80].

    25 ms / 10 ms povey frames, pre-emphasis 0.97, DC removal, no dither: the speaker model's input.
    """
    rows = wav.reshape(-1, wav.shape[-1])
    feats = torch.stack(
        [
            torchaudio.compliance.kaldi.fbank(row[None], num_mel_bins=n_bins, sample_frequency=sr, dither=0.0)
            for row in rows
        ]
    )
    return feats.reshape(*wav.shape[:-1], *feats.shape[-2:])
