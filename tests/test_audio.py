"""engine.audio: loading, resampling, spectrogram, mel and fbank, against upstream's goldens and first principles."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torchaudio

from engine import audio
from engine.errors import BadReference
from engine.parity import check_audio

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "reference" / "gpt-sovits" / "fixtures"


def tone(freq: float, seconds: float, sr: int, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    return (amp * torch.sin(2 * math.pi * freq * t)).float()


def wav_bytes(data: np.ndarray, sr: int, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    soundfile.write(buf, data, sr, subtype=subtype, format=fmt)
    return buf.getvalue()


def test_audio_goldens_match_upstream() -> None:
    results = list(check_audio.check(FIXTURES))
    assert [r.name for r in results] == [
        "audio.spectrogram",
        "audio.mel_spectrogram",
        "audio.spec_to_mel",
        "audio.resample_32k_to_16k",
    ]
    assert all(r.passed for r in results), [r.line() for r in results]


def test_load_audio_reads_pcm16_as_floats_in_unit_range(tmp_path: Path) -> None:
    samples = np.array([0, 16384, -32768, 32767, -1], dtype=np.int16)
    data = wav_bytes(samples, 22050)
    path = tmp_path / "ref.wav"
    path.write_bytes(data)
    from_bytes, sr = audio.load_audio(data)
    from_path, sr_path = audio.load_audio(path)
    assert sr == sr_path == 22050
    assert from_bytes.dtype == torch.float32
    assert torch.equal(from_bytes, torch.from_numpy(samples.astype(np.float32) / 32768.0))
    assert torch.equal(from_bytes, from_path)


def test_load_audio_averages_channels() -> None:
    left = np.full(100, 0.5, dtype=np.float32)
    right = np.full(100, -0.25, dtype=np.float32)
    wav, sr = audio.load_audio(wav_bytes(np.stack([left, right], axis=1), 16000, subtype="FLOAT"))
    assert sr == 16000 and wav.shape == (100,)
    assert torch.allclose(wav, torch.full((100,), 0.125))


def test_load_audio_resamples_with_the_chosen_resampler() -> None:
    data = wav_bytes(tone(440, 1.0, 48000).numpy(), 48000, subtype="FLOAT")
    native, _ = audio.load_audio(data)
    sinc, sr = audio.load_audio(data, sr=32000)
    hq, sr_hq = audio.load_audio(data, sr=16000, hq=True)
    assert sr == 32000 and sr_hq == 16000
    assert torch.equal(sinc, torchaudio.functional.resample(native, 48000, 32000))
    assert torch.equal(hq, audio.resample_hq(native, 48000, 16000))


def test_load_audio_reads_flac_and_ogg() -> None:
    signal = tone(300, 0.5, 32000).numpy()
    for fmt, subtype in (("FLAC", "PCM_16"), ("OGG", "VORBIS")):
        wav, sr = audio.load_audio(wav_bytes(signal, 32000, subtype=subtype, fmt=fmt))
        assert sr == 32000 and abs(wav.shape[0] - signal.shape[0]) < 2048


@pytest.mark.parametrize(
    "payload",
    [b"this is not audio at all" * 10, b"RIFF\x00\x00\x00\x00WAVEfmt ", bytes(range(256)) * 4],
    ids=["text", "truncated-wav-header", "noise-bytes"],
)
def test_load_audio_rejects_unreadable_bytes_clearly(payload: bytes) -> None:
    with pytest.raises(BadReference, match="could not read the uploaded audio.*WAV, FLAC"):
        audio.load_audio(payload)


def test_load_audio_rejects_empty_input() -> None:
    with pytest.raises(BadReference, match="empty"):
        audio.load_audio(b"")
    with pytest.raises(BadReference, match="no samples"):
        audio.load_audio(wav_bytes(np.zeros(0, dtype=np.int16), 32000))


def test_load_audio_rejects_non_finite_samples() -> None:
    data = np.array([0.1, np.nan, 0.2], dtype=np.float32)
    with pytest.raises(BadReference, match="NaN"):
        audio.load_audio(wav_bytes(data, 32000, subtype="FLOAT"))


def test_load_audio_of_a_missing_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.wav"):
        audio.load_audio(tmp_path / "nowhere.wav")


def test_resample_hq_keeps_a_tone_and_librosas_length() -> None:
    wav = tone(1000, 1.0, 32000)[:31999]  # odd length: librosa rounds the output length up
    out = audio.resample_hq(wav, 32000, 16000)
    assert out.shape == (16000,) and out.dtype == torch.float32
    expected = tone(1000, 1.0, 16000)
    middle = slice(1000, 15000)  # away from the filter's edge effects
    assert (out[middle] - expected[middle]).abs().max() < 1e-3


def test_resample_hq_treats_rows_independently() -> None:
    rows = torch.stack([tone(440, 0.5, 44100), tone(880, 0.5, 44100, amp=0.2)])
    batched = audio.resample_hq(rows, 44100, 16000)
    assert batched.shape == (2, math.ceil(rows.shape[1] * 16000 / 44100))
    for i in range(2):
        assert torch.equal(batched[i], audio.resample_hq(rows[i], 44100, 16000))


def test_resample_is_identity_at_equal_rates() -> None:
    wav = torch.randn(1000)
    assert audio.resample(wav, 32000, 32000) is wav
    assert audio.resample_hq(wav, 16000, 16000) is wav


def test_spectrogram_has_one_frame_per_hop_and_peaks_at_the_tone() -> None:
    wav = tone(1000, 1.0, audio.SAMPLE_RATE)
    spec = audio.spectrogram(wav)
    assert spec.shape == (audio.N_FREQS, audio.SAMPLE_RATE // audio.HOP)
    bin_hz = audio.SAMPLE_RATE / audio.N_FFT
    assert spec[:, 10].argmax().item() == round(1000 / bin_hz)
    assert spec.min() >= math.sqrt(audio.SPEC_EPS) * 0.999  # the epsilon keeps it off zero


def test_spectrogram_frames_for_lengths_that_are_not_multiples_of_the_hop() -> None:
    for length in (705, 1000, 32123):
        frames = audio.spectrogram(torch.randn(length)).shape[-1]
        assert frames == (length + audio.N_FFT - audio.HOP - audio.N_FFT) // audio.HOP + 1


def test_spectrogram_batches_rows() -> None:
    rows = torch.randn(3, 6400)
    batched = audio.spectrogram(rows)
    assert batched.shape == (3, audio.N_FREQS, 10)
    assert torch.allclose(batched[1], audio.spectrogram(rows[1]), atol=1e-5)


def test_spectrogram_of_too_short_audio_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="too short"):
        audio.spectrogram(torch.randn(300))


def test_mel_filters_equal_torchaudios_slaney_filterbank() -> None:
    ours = audio.mel_filters(32000, 2048, 128, 0.0, None, torch.device("cpu"), torch.float32)
    theirs = torchaudio.functional.melscale_fbanks(1025, 0.0, 16000.0, 128, 32000, "slaney", "slaney").T
    assert ours.shape == (128, 1025)
    assert (ours - theirs).abs().max() < 1e-6  # theirs is built in float32, ours in float64


def test_mel_filters_are_cached_per_device_and_dtype() -> None:
    cpu = torch.device("cpu")
    a = audio.mel_filters(32000, 2048, 128, 0.0, None, cpu, torch.float32)
    assert audio.mel_filters(32000, 2048, 128, 0.0, None, cpu, torch.float32) is a
    b = audio.mel_filters(32000, 2048, 128, 0.0, None, cpu, torch.float64)
    assert b.dtype == torch.float64 and b is not a
    assert audio.hann_window(2048, cpu, torch.float32) is audio.hann_window(2048, cpu, torch.float32)


def test_mel_spectrogram_is_spec_to_mel_of_the_spectrogram() -> None:
    wav = tone(500, 0.5, audio.SAMPLE_RATE)
    mel = audio.mel_spectrogram(wav)
    assert mel.shape == (audio.N_MELS, 25)
    assert torch.equal(mel, audio.spec_to_mel(audio.spectrogram(wav)))
    assert mel.min() >= math.log(audio.LOG_MEL_FLOOR)


def test_fbank_has_kaldi_frames_and_treats_rows_independently() -> None:
    rows = torch.stack([tone(200, 1.0, 16000), tone(700, 1.0, 16000, amp=0.1)])
    feats = audio.fbank(rows)
    assert feats.shape == (2, 1 + (16000 - 400) // 160, audio.FBANK_BINS)
    assert torch.equal(feats[1], audio.fbank(rows[1]))
