"""Uploads are bounded before they are decoded: size, header claims, channels, sample rate, and a
decode that stops at the longest accepted duration when a header lies about the length."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
import soundfile as sf
from jobs_fixtures import audio_bytes
from test_api_contract import Stack

from shared.audio_limits import AudioLimits, AudioRefused, check_upload
from shared.tables import Job, Voice

LIMITS = AudioLimits(max_bytes=20 * 1024 * 1024, min_seconds=3.0, max_seconds=10.0)


def hours_of_silence_flac(hours: float = 3.0, sample_rate: int = 8000) -> bytes:
    """Hours of silence compress to a few hundred kB of FLAC: the classic decompression bomb."""
    buf = io.BytesIO()
    minute = np.zeros(sample_rate * 60, dtype=np.int16)
    with sf.SoundFile(buf, "w", sample_rate, 1, format="FLAC") as out:
        for _ in range(int(hours * 60)):
            out.write(minute)
    return buf.getvalue()


def with_unknown_length(flac: bytes) -> bytes:
    """The same FLAC with STREAMINFO's total-sample count zeroed ("unknown"): only decoding tells."""
    data = bytearray(flac)
    assert data[:4] == b"fLaC"
    data[21] &= 0xF0  # the 36-bit count starts in the low nibble of byte 21
    data[22:26] = b"\0\0\0\0"
    return bytes(data)


def test_a_small_file_that_decodes_to_hours_is_refused_by_its_header():
    bomb = hours_of_silence_flac()
    assert len(bomb) < 1_000_000 < LIMITS.max_bytes  # small enough to pass the size check
    with pytest.raises(AudioRefused, match="10800.0 s long") as refused:
        check_upload(bomb, LIMITS)
    assert refused.value.reason == "invalid"


def test_a_header_that_hides_the_length_is_refused_after_a_bounded_decode():
    bomb = with_unknown_length(hours_of_silence_flac())
    started = time.perf_counter()
    with pytest.raises(AudioRefused, match="decodes to more than 10 s"):
        check_upload(bomb, LIMITS)
    # Decoding 3 h would take seconds; stopping after ~10 s of audio takes milliseconds. Not a timed
    # assertion on speed: a generous bound that only a full decode could break.
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("channels, rate, words", [(3, 32000, "3 channels"), (1, 4000, "4000 Hz")])
def test_channels_and_sample_rate_are_bounded(channels, rate, words):
    buf = io.BytesIO()
    sf.write(buf, np.zeros((rate * 4, channels), dtype=np.float32), rate, format="WAV")
    with pytest.raises(AudioRefused, match=words):
        check_upload(buf.getvalue(), LIMITS)


def test_a_good_reference_passes_with_its_decoded_facts():
    facts = check_upload(audio_bytes(4.0, "FLAC"), LIMITS)
    assert (facts.format, facts.sample_rate, facts.channels) == ("FLAC", 32000, 1)
    assert facts.seconds == pytest.approx(4.0, abs=1e-3)


def test_too_large_is_refused_before_anything_is_read():
    with pytest.raises(AudioRefused) as refused:
        check_upload(b"\0" * 1001, AudioLimits(1000, 3, 10))
    assert refused.value.reason == "size"


@pytest.mark.parametrize("bomb", [hours_of_silence_flac, lambda: with_unknown_length(hours_of_silence_flac())])
def test_the_api_refuses_a_decompression_bomb_and_keeps_nothing(tmp_data_dir, bomb):
    stack = Stack(tmp_data_dir)
    me = stack.member("ann")
    r = stack.client.post("/v1/voices", files={"audio": ("ref.flac", bomb())},
                          data={"transcript": "今天天气很好。", "language": "zh", "name": "me"}, headers=me)
    assert r.status_code == 422, r.text
    assert "a reference must be 3 to 10 s" in r.json()["detail"]
    assert stack.count(Voice) == 0 and stack.count(Job) == 0 and stack.stored() == []
