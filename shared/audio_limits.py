"""Uploaded audio is bounded before it is decoded, and decoded only as far as the bounds allow.

A few kilobytes of compressed audio can claim (or really hold) hours of samples. The checks go from
cheap to costly: the byte size, then what the headers say (format, channels, sample rate, duration),
then a decode in blocks that stops as soon as the decoded duration passes the limit, so a file whose
header lies is refused after decoding at most ``max_seconds`` of it, never the whole file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

ACCEPTED_FORMATS = ("WAV", "WAVEX", "RF64", "FLAC", "OGG", "MP3")
SAMPLE_RATES = (8_000, 192_000)  # lowest and highest accepted, inclusive
MAX_CHANNELS = 2
BLOCK_FRAMES = 65_536
UNKNOWN_FRAMES = 2**62


class AudioRefused(Exception):
    """An upload that breaks a bound. ``reason`` is one of "size", "format", "invalid"."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class AudioLimits:
    max_bytes: int
    min_seconds: float
    max_seconds: float


@dataclass(frozen=True)
class AudioFacts:
    format: str
    sample_rate: int
    channels: int
    seconds: float  # decoded, not the header's claim


def check_upload(audio: bytes, limits: AudioLimits) -> AudioFacts:
    """Refuse audio outside ``limits`` (raising :class:`AudioRefused`); return what it really holds."""
    import soundfile as sf

    if len(audio) > limits.max_bytes:
        raise AudioRefused(f"the recording is {len(audio)} bytes; the limit is {limits.max_bytes}", "size")
    if not audio:
        raise AudioRefused("the recording is empty", "invalid")
    try:
        with sf.SoundFile(io.BytesIO(audio)) as sound:
            _check_header(sound, limits)
            seconds = _decoded_seconds(sound, limits)
            facts = AudioFacts(sound.format, sound.samplerate, sound.channels, seconds)
    except AudioRefused:
        raise
    except Exception as exc:  # libsndfile's errors, and decoders that stop on corrupt frames
        raise AudioRefused("the recording is not audio we can read; send WAV, FLAC, OGG or MP3",
                           "format") from exc
    low, high = limits.min_seconds, limits.max_seconds
    if seconds < low:
        raise AudioRefused(f"the recording is {seconds:.1f} s long; a reference must be {low:g} to {high:g} s",
                           "invalid")
    return facts


def _check_header(sound, limits: AudioLimits) -> None:  # noqa: ANN001 - soundfile.SoundFile
    if sound.format not in ACCEPTED_FORMATS:
        raise AudioRefused(f"{sound.format} recordings are not accepted; send WAV, FLAC, OGG or MP3", "format")
    if not 1 <= sound.channels <= MAX_CHANNELS:
        raise AudioRefused(f"the recording has {sound.channels} channels; send mono or stereo", "invalid")
    low, high = SAMPLE_RATES
    if not low <= sound.samplerate <= high:
        raise AudioRefused(f"the recording's sample rate is {sound.samplerate} Hz; it must be {low} to "
                           f"{high} Hz", "invalid")
    claimed = sound.frames / sound.samplerate
    # A stream may leave its length unknown (libsndfile then reports a huge count): decoding decides.
    if 0 < sound.frames < UNKNOWN_FRAMES and claimed > limits.max_seconds:
        raise AudioRefused(_too_long(claimed, limits), "invalid")


def _decoded_seconds(sound, limits: AudioLimits) -> float:  # noqa: ANN001 - soundfile.SoundFile
    """Decode block by block, stopping one block past the limit: the header may lie."""
    cap = int(limits.max_seconds * sound.samplerate)
    frames = 0
    while True:
        block = sound.read(BLOCK_FRAMES, dtype="int16", always_2d=True)
        if not len(block):
            return frames / sound.samplerate
        frames += len(block)
        if frames > cap:
            raise AudioRefused(f"the recording decodes to more than {limits.max_seconds:g} s (its header "
                               "said otherwise); a reference must be "
                               f"{limits.min_seconds:g} to {limits.max_seconds:g} s", "invalid")


def _too_long(seconds: float, limits: AudioLimits) -> str:
    return (f"the recording is {seconds:.1f} s long; a reference must be {limits.min_seconds:g} to "
            f"{limits.max_seconds:g} s")
