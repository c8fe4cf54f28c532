"""The export chain piece by piece: any split of the audio gives exactly the stored file's audio."""

from __future__ import annotations

import io
import shutil
import subprocess
import tracemalloc

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from engine.errors import EngineError
from engine.export import export_audio, finish_stored, limit_peaks, read_label, verify_label
from engine.exporting import LEAD_S, PieceExporter
from engine.exporting.limiter import StreamLimiter
from engine.exporting.marker import StreamMarker
from engine.watermark import Keyring, detect, pack_payload, unpack_payload
from engine.watermark.embed import PEAK_CEILING, cell_signs, mark_signal
from engine.watermark.pattern import DEFAULT_PARAMS as DEFAULT
from engine.watermark.pattern import resample
from ops.bench.watermark import synthetic_speech

SR = 32000
MARK = 0x5EED_0F_D1A7
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="decoding FLAC/MP3 streams needs ffmpeg")


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return synthetic_speech(11.0, seed=2) * 0.3


@pytest.fixture(scope="module")
def keyring() -> Keyring:
    return Keyring.generate()


def options(keyring: Keyring) -> dict:
    return {"loudness_lufs": -20.0, "keyring": keyring, "payload": pack_payload(MARK), "lead_s": LEAD_S}


def stream(x: np.ndarray, fmt: str, sizes: list[int], **kw) -> tuple[bytes, PieceExporter]:
    """Push ``x`` in pieces of ``sizes`` (repeated to the end); the concatenated bytes."""
    exporter = PieceExporter(SR, fmt, **kw)
    out, pos, i = [], 0, 0
    while pos < x.shape[0]:
        n = sizes[i % len(sizes)]
        out.append(exporter.push(x[pos:pos + n]))
        pos, i = pos + n, i + 1
    out.append(exporter.finish())
    return b"".join(out), exporter


def random_sizes(seed: int, count: int = 400) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int(v) for v in rng.choice([1, 7, 63, 319, 1023, 2049, 4801, 32000, 77777], count)]


def sf_decode(data: bytes) -> np.ndarray:
    return sf.read(io.BytesIO(data), dtype="float64", always_2d=True)[0]


def ff_decode(data: bytes) -> np.ndarray:
    done = subprocess.run(["ffmpeg", "-v", "error", "-i", "-", "-f", "f32le", "-ac", "1", "-"], input=data,
                          capture_output=True, check=True)
    return np.frombuffer(done.stdout, np.float32)


SPLITS = {
    "random": random_sizes(1),
    "random-other": random_sizes(2),
    "one-sample-then-odd": [1] * 3000 + [997, 13, 5003],
    "shorter-than-look-ahead": [101, 37, 211],
    "whole": [10**9],
}


@pytest.mark.parametrize("split", list(SPLITS))
def test_wav_stream_decodes_to_exactly_the_stored_audio(speech, keyring, split):
    stored = export_audio(speech, SR, "wav", **options(keyring))
    streamed, exporter = stream(speech, "wav", SPLITS[split], **options(keyring))
    assert streamed[:4] == b"RIFF" and streamed[4:8] == b"\xff\xff\xff\xff"  # streaming sizes
    np.testing.assert_array_equal(sf_decode(streamed), sf_decode(stored))
    assert exporter.stored_head + streamed[len(exporter.stored_head):] == stored  # only the header differs


@pytest.mark.parametrize("split", ["random", "one-sample-then-odd", "shorter-than-look-ahead"])
def test_flac_stream_has_the_stored_frames_and_decodes_to_the_stored_audio(speech, keyring, split):
    stored = export_audio(speech, SR, "flac", **options(keyring))
    streamed, exporter = stream(speech, "flac", SPLITS[split], **options(keyring))
    head = len(exporter.stored_head)
    assert streamed[head:] == stored[head:] and len(streamed) == len(stored)
    # the streamed STREAMINFO says "length unknown" (libsndfile cannot read that; ffmpeg can)
    if shutil.which("ffmpeg"):
        np.testing.assert_array_equal(ff_decode(streamed), ff_decode(stored))
        np.testing.assert_array_equal(ff_decode(stored), sf_decode(stored)[:, 0].astype(np.float32))


def test_ogg_opus_stream_decodes_to_the_stored_audio(speech, keyring):
    stored = export_audio(speech, SR, "ogg", **options(keyring))
    streamed, exporter = stream(speech, "ogg", SPLITS["random"], **options(keyring))
    # libsndfile never goes back in an Ogg file; each file gets a random stream serial (so the page
    # bytes differ between two encodes), the packets and so the samples do not
    assert exporter.stored_head == streamed[:len(exporter.stored_head)]
    np.testing.assert_array_equal(sf_decode(streamed), sf_decode(stored))
    if shutil.which("ffmpeg"):
        np.testing.assert_array_equal(ff_decode(streamed), ff_decode(stored))


@needs_ffmpeg
def test_mp3_stream_holds_the_stored_samples_after_one_frame_and_the_encoder_delay(speech, keyring):
    stored = export_audio(speech, SR, "mp3", **options(keyring))
    streamed, exporter = stream(speech, "mp3", SPLITS["random"], **options(keyring))
    head = len(exporter.stored_head)
    assert streamed[head:] == stored[head:]
    # the stored file's first frame is the LAME tag (written at close), which tells decoders to drop
    # the encoder delay; the stream has a silent frame there instead, so a decoder of the stream
    # plays one frame (1152) and the delay (576 + 529) more before the same samples
    full, tagged = ff_decode(streamed), ff_decode(stored)
    lead = 1152 + 1105
    np.testing.assert_array_equal(full[lead:lead + tagged.size], tagged)
    assert np.max(np.abs(full[:1152])) == 0.0


def test_streamed_file_carries_the_mark_and_label_steps_still_apply(speech, keyring):
    streamed, exporter = stream(speech, "wav", SPLITS["random"], **options(keyring))
    audio = sf_decode(streamed)[:, 0]
    found = detect(audio, SR, keyring)
    assert found.mac_ok and unpack_payload(found.payload) == MARK
    stored = export_audio(speech, SR, "wav", **options(keyring), label="job-s1")
    assert read_label(stored).produce_id == "job-s1" and verify_label(stored, keyring)
    np.testing.assert_array_equal(sf_decode(stored)[:, 0], audio)
    # what a worker that streamed the job stores: the same file, byte for byte
    assert finish_stored(exporter, streamed, keyring=keyring, label="job-s1") == stored


def test_explicit_label_comes_first_in_the_stream(speech, keyring):
    kw = options(keyring) | {"explicit_label": "rhythm"}
    stored = export_audio(speech, SR, "wav", **kw)
    streamed, _ = stream(speech, "wav", SPLITS["shorter-than-look-ahead"], **kw)
    np.testing.assert_array_equal(sf_decode(streamed), sf_decode(stored))
    head = sf_decode(streamed)[: int(0.1 * SR), 0]
    assert np.argmax(np.abs(np.fft.rfft(head))) * SR / head.size == pytest.approx(1000, abs=20)
    assert detect(sf_decode(streamed)[:, 0], SR, keyring).payload == pack_payload(MARK)


def test_loudness_of_a_long_stream_is_near_the_target(keyring):
    # one gain from the lead: on this signal within 1.5 LU; on espeak-ng speech within 2.1 LU over
    # 12 voices (README)
    x = synthetic_speech(60.0, seed=6) * 0.05
    streamed, exporter = stream(x, "wav", [SR], **options(keyring))
    audio = sf_decode(streamed)[:, 0]
    assert pyloudnorm.Meter(SR).integrated_loudness(audio) == pytest.approx(-20.0, abs=1.5)
    # the first seconds of this signal are below BS.1770's absolute gate: the lead grew past them
    meter = pyloudnorm.Meter(SR)
    seconds = next(s for s in range(1, 6) if np.isfinite(meter.integrated_loudness(x[: s * SR])))
    assert seconds > 1
    lead_loudness = meter.integrated_loudness(x[: seconds * SR])
    assert 20 * np.log10(exporter.gain) == pytest.approx(-20.0 - lead_loudness, abs=1e-9)


def test_a_silent_lead_grows_until_there_is_something_to_measure(keyring):
    x = np.concatenate([np.zeros(int(2.5 * SR)), synthetic_speech(6.0, seed=3) * 0.05])
    streamed, exporter = stream(x, "wav", [4000], loudness_lufs=-20.0)
    lead_loudness = pyloudnorm.Meter(SR).integrated_loudness(x[: 3 * SR])  # 1 s, 2 s silent; 3 s is not
    assert 20 * np.log10(exporter.gain) == pytest.approx(-20.0 - lead_loudness, abs=1e-9)


@pytest.mark.parametrize("marked", [False, True])
def test_no_sample_exceeds_the_ceiling(keyring, marked):
    x = synthetic_speech(20.0, seed=4) * 4
    kw = options(keyring) if marked else {"loudness_lufs": -8.0}
    kw["loudness_lufs"] = -8.0
    streamed, _ = stream(x, "wav", SPLITS["random"], **kw)
    audio = sf_decode(streamed)
    ceiling = PEAK_CEILING if marked else 10 ** (-1 / 20)
    assert np.max(np.abs(audio)) <= ceiling + 1 / 32768  # one PCM step of rounding
    assert np.max(np.abs(audio)) > 0.5 * ceiling  # the limiter limits, it does not squash


def test_streaming_limiter_equals_itself_whole_and_keeps_quiet_audio(speech):
    x = np.concatenate([speech, [0.2, 1.5, -2.0, 0.3], speech[:5000] * 3])
    ceiling = 10 ** (-1 / 20)
    whole = limit_peaks(x, SR)
    limiter = StreamLimiter(SR, ceiling)
    parts = [limiter.push(x[i:i + 333, None]) for i in range(0, x.size, 333)] + [limiter.finish()]
    np.testing.assert_allclose(np.concatenate(parts)[:, 0], whole, rtol=0, atol=1e-12)
    assert np.max(np.abs(whole)) <= ceiling + 1e-12
    quiet = np.flatnonzero(np.abs(x) < 0.3)[:1000]  # far from the peaks nothing changes
    np.testing.assert_array_equal(whole[quiet[:100]], x[quiet[:100]])


def test_streaming_marker_matches_the_whole_file_mark(speech, keyring):
    signs = cell_signs(keyring.primary, pack_payload(MARK))
    strength = 0.03
    x = speech[: 5 * SR + 123]
    expected = x + np.pad(resample(mark_signal(resample(x, SR, 16000), signs, DEFAULT, strength), 16000, SR),
                          (0, 64))[: x.size]
    marker = StreamMarker(SR, signs, strength)
    parts = [marker.push(x[i:i + 1111, None]) for i in range(0, x.size, 1111)] + [marker.finish()]
    got = np.concatenate(parts)[:, 0]
    assert got.size == x.size
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


def test_memory_stays_bounded_for_ten_minutes_pushed_in_one_second_pieces(keyring):
    pieces = [synthetic_speech(1.0, seed=s) * 0.3 for s in range(8)]  # 600 s: these, repeated
    exporter = PieceExporter(SR, "flac", **options(keyring))
    total = 0
    tracemalloc.start()
    try:
        for i in range(600):
            total += len(exporter.push(pieces[i % len(pieces)]))
        total += len(exporter.finish())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    whole_signal = 600 * SR * 8
    assert total > 600 * SR  # it did encode ten minutes (FLAC: > 1 byte a sample)
    assert peak < 8 * 2**20 < whole_signal / 15, peak  # a few MB against 154 MB of float audio


def test_bad_pieces_are_refused_clearly(keyring):
    with pytest.raises(EngineError, match="unknown audio format"):
        PieceExporter(SR, "aiff")
    with pytest.raises(EngineError, match="payload"):
        PieceExporter(SR, "wav", keyring=keyring)
    exporter = PieceExporter(SR, "wav")
    exporter.push(np.zeros((100, 2)))
    with pytest.raises(EngineError, match="channels"):
        exporter.push(np.zeros((100, 1)))
    exporter.finish()
    with pytest.raises(EngineError, match="after finish"):
        exporter.push(np.zeros(10))





def test_stereo_pieces_give_the_stored_stereo_file(speech, keyring):
    x = np.stack([speech[: 4 * SR], 0.5 * speech[SR: 5 * SR]], axis=1)
    stored = export_audio(x, SR, "wav", **options(keyring))
    streamed, _ = stream(x, "wav", SPLITS["random-other"], **options(keyring))
    audio = sf_decode(streamed)
    assert audio.shape == (x.shape[0], 2)
    np.testing.assert_array_equal(audio, sf_decode(stored))
    assert detect(audio, SR, keyring).payload == pack_payload(MARK)
