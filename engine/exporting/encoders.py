"""Encoders fed piece by piece: each ``push`` returns the container bytes ready so far.

WAV is written here (libsndfile converts the samples): a 44-byte header whose RIFF and data sizes are 0xFFFFFFFF ("until the end",
what streaming WAV readers expect), then 16-bit PCM; the stored file's header (``head`` after
``finish``) carries the real sizes. FLAC, MP3 and Ogg Opus go through libsndfile writing into a
buffer that keeps only the bytes not yet handed out plus the file's first ``HEAD_BYTES``: libsndfile
goes back there at close (FLAC rewrites STREAMINFO: sample count, MD5, frame sizes; MP3 rewrites its
first frame as the LAME/Xing tag; Opus goes back nowhere). So memory stays bounded, and
``stored = head + stream[len(head):]``: the streamed bytes carry the header as first written.
Opus takes only a few rates: other rates are resampled to 48 kHz by a streaming soxr resampler.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import soundfile as sf
import soxr

from engine.errors import EngineError

ENCODED = ("wav", "flac", "ogg", "mp3")
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
HEAD_BYTES = 64 * 1024
STREAMING_SIZE = 0xFFFFFFFF
_SOUNDFILE = {"flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "OPUS"), "mp3": ("MP3", "MPEG_LAYER_III")}


def open_encoder(fmt: str, sample_rate: int, channels: int) -> WavStream | SoundFileStream:
    if fmt == "wav":
        return WavStream(sample_rate, channels)
    if fmt in _SOUNDFILE:
        return SoundFileStream(fmt, sample_rate, channels)
    raise EngineError(f"unknown audio format {fmt!r}; choose one of {', '.join(ENCODED)}")


def wav_header(sample_rate: int, channels: int, data_bytes: int | None) -> bytes:
    """PCM-16 WAV header; ``data_bytes`` None gives the streaming sizes."""
    riff = STREAMING_SIZE if data_bytes is None else 36 + data_bytes
    data = STREAMING_SIZE if data_bytes is None else data_bytes
    fmt = struct.pack("<HHIIHH", 1, channels, sample_rate, sample_rate * channels * 2, channels * 2, 16)
    return b"RIFF" + struct.pack("<I", riff) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + \
        b"data" + struct.pack("<I", data)


class WavStream:
    def __init__(self, sample_rate: int, channels: int) -> None:
        self.sample_rate, self.channels = sample_rate, channels
        self._data_bytes = 0
        self._started = False
        self._finished = False
        # libsndfile converts the samples (its rounding, as the other formats get), raw: no header
        self._buffer = HeadAndTail()
        self._pcm = sf.SoundFile(self._buffer, "w", sample_rate, channels, format="RAW", subtype="PCM_16",
                                 endian="LITTLE")

    def push(self, x: np.ndarray) -> bytes:
        if x.shape[0]:
            self._pcm.write(np.clip(x, -1.0, 1.0))
        pcm = self._buffer.take()
        self._data_bytes += len(pcm)
        if not self._started:
            self._started = True
            return wav_header(self.sample_rate, self.channels, None) + pcm
        return pcm

    def finish(self) -> bytes:
        self._pcm.close()
        out = self.push(np.zeros((0, self.channels)))
        self._finished = True
        return out

    @property
    def head(self) -> bytes:
        """The stored file's header (real sizes once finished)."""
        return wav_header(self.sample_rate, self.channels, self._data_bytes if self._finished else None)


class SoundFileStream:
    def __init__(self, fmt: str, sample_rate: int, channels: int) -> None:
        container, subtype = _SOUNDFILE[fmt]
        rate = sample_rate if fmt != "ogg" or sample_rate in OPUS_RATES else 48000
        self._resampler = None if rate == sample_rate else soxr.ResampleStream(
            sample_rate, rate, channels, dtype="float64", quality="HQ")
        self._buffer = HeadAndTail()
        self._file = sf.SoundFile(self._buffer, "w", rate, channels, format=container, subtype=subtype)

    def push(self, x: np.ndarray) -> bytes:
        self._write(x, last=False)
        return self._buffer.take()

    def finish(self) -> bytes:
        self._write(np.zeros((0, self._file.channels)), last=True)
        self._file.close()
        return self._buffer.take()

    def _write(self, x: np.ndarray, *, last: bool) -> None:
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x if x.shape[1] > 1 else x[:, 0], last=last).reshape(-1, x.shape[1])
        if x.shape[0]:
            self._file.write(np.clip(x, -1.0, 1.0))

    @property
    def head(self) -> bytes:
        return bytes(self._buffer.head)


class HeadAndTail(io.RawIOBase):
    """A growing file that keeps its first HEAD_BYTES and the bytes not yet taken, nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.head = bytearray()  # positions [0, HEAD_BYTES)
        self._tail = bytearray()  # positions [self._tail_start, size)
        self._tail_start = HEAD_BYTES
        self._size = self._pos = self._taken = 0

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def write(self, data: bytes) -> int:
        data = bytes(data)
        start, end = self._pos, self._pos + len(data)
        if start < HEAD_BYTES:
            part = data[: HEAD_BYTES - start]
            if start > len(self.head):
                self.head.extend(bytes(start - len(self.head)))
            self.head[start:start + len(part)] = part
        if end > HEAD_BYTES:
            at = max(start, HEAD_BYTES)
            if at < self._tail_start:
                raise EngineError(f"the encoder rewrote byte {at}, already streamed and dropped")
            rel = at - self._tail_start
            if rel > len(self._tail):
                self._tail.extend(bytes(rel - len(self._tail)))
            self._tail[rel:rel + end - at] = data[at - start:]
        self._pos, self._size = end, max(self._size, end)
        return len(data)

    def read(self, size: int = -1) -> bytes:
        end = self._size if size < 0 else min(self._size, self._pos + size)
        out = bytes(self._span(self._pos, end))
        self._pos += len(out)
        return out

    def take(self) -> bytes:
        """The bytes written since the last take (positions not handed out yet)."""
        out = bytes(self._span(self._taken, self._size))
        self._taken = self._size
        if self._taken > self._tail_start:  # handed out: no longer kept (the head always is)
            del self._tail[: self._taken - self._tail_start]
            self._tail_start = self._taken
        return out

    def _span(self, start: int, end: int) -> bytes:
        if start >= end:
            return b""
        if max(start, HEAD_BYTES) < min(end, self._tail_start):
            raise EngineError("the encoder read bytes already streamed and dropped")
        head = bytes(self.head[start:min(end, HEAD_BYTES)]) if start < HEAD_BYTES else b""
        lo = max(start, self._tail_start)
        tail = bytes(self._tail[lo - self._tail_start:end - self._tail_start]) if end > lo else b""
        return head + tail
