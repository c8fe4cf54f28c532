"""Goldens of ``audio_golden``: spectrogram, mel, spec_to_mel and the 32 -> 16 kHz sinc resampler."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from engine import audio
from engine.parity import GoldenResult, compare, load_golden

ATOL = 1e-4
RTOL = 1e-5  # large spectrogram magnitudes agree relatively (fixtures/README.md, section 3)


def check(folder: Path) -> Iterator[GoldenResult]:
    golden, _ = load_golden(folder, "audio_golden")
    wav = golden["in.wav32k"]
    spec = audio.spectrogram(wav, audio.N_FFT, audio.HOP, audio.WIN)
    yield compare("audio.spectrogram", spec, golden["spectrogram"], ATOL, RTOL)
    mel = audio.mel_spectrogram(wav, audio.SAMPLE_RATE, audio.N_FFT, audio.N_MELS, audio.HOP, audio.WIN)
    yield compare("audio.mel_spectrogram", mel, golden["mel_spectrogram"], ATOL)
    # fed upstream's own spectrogram so that this line tests the filterbank alone
    mel_of_spec = audio.spec_to_mel(golden["spectrogram"], audio.SAMPLE_RATE, audio.N_FFT, audio.N_MELS)
    yield compare("audio.spec_to_mel", mel_of_spec, golden["spec_to_mel"], ATOL)
    wav16k = audio.resample(wav, audio.SAMPLE_RATE, audio.SSL_RATE)
    yield compare("audio.resample_32k_to_16k", wav16k, golden["resample_32k_to_16k"], ATOL)
