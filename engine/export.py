"""Turn rendered float audio into the stored file: the one path every result takes.

Order (the labelling rules ask for it, and each step must not undo the previous one):
explicit label -> loudness -> watermark -> encode -> AIGC metadata -> optional C2PA signature.
The watermark comes after loudness so a level change cannot weaken it and before encoding so the
stored file carries it; the metadata comes after encoding because it lives in the container, and
a C2PA manifest comes last because it hashes everything before it.

Everything up to the encoding runs piece by piece in ``engine.exporting.PieceExporter`` (a stream
of a job and its stored file are the same computation); ``finish_stored`` then does the rest.
"""

from __future__ import annotations

import struct

import numpy as np

from contracts import FORMATS
from engine.errors import EngineError
from engine.exporting import PEAK_DBFS, PieceExporter
from engine.exporting.encoders import OPUS_RATES, open_encoder
from engine.exporting.limiter import StreamLimiter
from engine.watermark import metadata
from engine.watermark.keys import Keyring
from engine.watermark.labels import AigcLabel

C2PA_FORMATS = ("wav", "flac", "mp3")  # what the C2PA SDK embeds into; Ogg files go unsigned
STREAM_LABELLED = ("wav",)  # formats whose label StreamedLabel computes as the bytes pass
WAV_HEADER = 44  # the streamed and stored WAV header (engine.exporting.encoders.wav_header)
PUSH_SAMPLES = 1 << 16  # export_audio feeds its chain in pieces this long: the split never changes the result
__all__ = ["C2PA_FORMATS", "FORMATS", "OPUS_RATES", "PEAK_DBFS", "STREAM_LABELLED", "StreamedLabel", "encode",
           "export_audio", "finish_stored", "limit_peaks", "read_label", "verify_label"]


def export_audio(audio: np.ndarray, sample_rate: int, fmt: str, *, loudness_lufs: float | None = None,
                 keyring: Keyring | None = None, payload: bytes | None = None,
                 label: AigcLabel | str | None = None, explicit_label: str = "none",
                 c2pa_signer: object | None = None, lead_s: float | None = None) -> bytes:
    """Stored bytes for ``audio`` (float, mono or samples x channels) in ``fmt`` (wav, flac, ogg, mp3).

    ``keyring`` and ``payload`` together turn the watermark on (the keyring's primary key marks);
    without a keyring the audio is not marked, which only tests that study raw output should do.
    ``label`` is the AIGC label to write, or a job id to build the default one from. The label's
    keyed hash (ReservedCode1) needs the keyring too. ``c2pa_signer`` (engine.watermark.c2pa.Signer,
    see ``load_signer``) adds a signed C2PA manifest last, to WAV, FLAC and MP3.

    The audio runs through ``PieceExporter`` (see engine.exporting): ``lead_s`` is its lead, None
    (the whole audio: loudness, cue level and mark strength from the whole file) or the streamed
    job's lead (``engine.exporting.LEAD_S``), which gives exactly the audio a stream of that job had.
    """
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise EngineError(f"unknown audio format {fmt!r}; choose one of {', '.join(FORMATS)}")
    exporter = PieceExporter(sample_rate, fmt, loudness_lufs=loudness_lufs, keyring=keyring, payload=payload,
                             explicit_label=explicit_label, lead_s=lead_s)
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    parts = [exporter.push(x[i:i + PUSH_SAMPLES]) for i in range(0, x.shape[0], PUSH_SAMPLES)]
    parts.append(exporter.finish())
    return finish_stored(exporter, b"".join(parts), keyring=keyring, label=label, c2pa_signer=c2pa_signer)


def finish_stored(exporter: PieceExporter, streamed: bytes, *, keyring: Keyring | None = None,
                  label: AigcLabel | str | None = None, c2pa_signer: object | None = None) -> bytes:
    """The stored file from a finished exporter and all the bytes it streamed: headers as rewritten at
    close, then the AIGC label and the C2PA manifest (the steps that need the finished file)."""
    data = stored_bytes(exporter, streamed)
    aigc = None
    if label is not None:
        aigc = label if isinstance(label, AigcLabel) else AigcLabel(produce_id=str(label))
        if keyring is not None:
            aigc = aigc.signed(keyring.primary, metadata.content_digest(data))
        data = metadata.write_label(data, aigc)
    if c2pa_signer is not None and exporter.fmt in C2PA_FORMATS:
        from engine.watermark import c2pa

        data = c2pa.sign(data, c2pa_signer, key_id=keyring.primary.id if keyring is not None else None, label=aigc)
    return data


class StreamedLabel:
    """The AIGC label of a streamed file, its digest updated as the bytes pass, so that the stored
    file never has to be in memory: ``update`` each streamed piece, then ``finish`` gives the head
    that replaces the stream's first bytes (``stored = head + stream[replace:]``), byte for byte
    what ``finish_stored`` makes from the whole stream.

    WAV only (``STREAM_LABELLED``): its digest covers the data chunk, which follows the header the
    stored file rewrites. FLAC, Ogg and MP3 (libsndfile rewrites their first frames or the label
    moves pages) and C2PA (it hashes the whole file) still go through ``finish_stored``.
    """

    def __init__(self, fmt: str) -> None:
        if fmt not in STREAM_LABELLED:
            raise EngineError(f"a {fmt} stream is labelled from its whole file")
        self._header_left = WAV_HEADER  # streamed header bytes still to come: not audio, not digested
        self._hash = metadata.content_hasher(fmt)
        self.data_bytes = 0  # audio bytes digested so far

    def update(self, data: bytes) -> None:
        skip = min(self._header_left, len(data))
        self._header_left -= skip
        audio = memoryview(data)[skip:]
        self._hash.update(audio)
        self.data_bytes += len(audio)

    def finish(self, exporter: PieceExporter, *, keyring: Keyring | None, label: AigcLabel | str) -> tuple[bytes, int]:
        """(head, replace): the stored header with the label, and how many streamed bytes it replaces."""
        head = exporter.stored_head
        data_bytes = struct.unpack("<I", head[40:44])[0]
        if len(head) != WAV_HEADER or data_bytes != self.data_bytes:
            raise EngineError("the WAV stream does not match its stored header")
        aigc = label if isinstance(label, AigcLabel) else AigcLabel(produce_id=str(label))
        if keyring is not None:
            aigc = aigc.signed(keyring.primary, self._hash.digest())
        # The label's chunks over a header with no samples yet, then the real sizes (data comes last)
        labelled = bytearray(metadata.write_label(head[:40] + struct.pack("<I", 0), aigc))
        if labelled[-8:] != b"data" + bytes(4):
            raise EngineError("the labelled WAV header does not end with its data chunk")
        labelled[4:8] = struct.pack("<I", struct.unpack("<I", labelled[4:8])[0] + data_bytes)
        labelled[-4:] = struct.pack("<I", data_bytes)
        return bytes(labelled), WAV_HEADER


def stored_bytes(exporter: PieceExporter, streamed: bytes) -> bytes:
    """The stored encoding from a finished exporter's streamed bytes: headers as rewritten at close."""
    head = exporter.stored_head
    return head + streamed[len(head):]


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
    y = np.asarray(x, dtype=np.float64)
    limiter = StreamLimiter(sample_rate, 10 ** (ceiling_dbfs / 20), window_s)
    column = y[:, None] if y.ndim == 1 else y
    out = np.concatenate([limiter.push(column), limiter.finish()]) if column.shape[0] else column
    return out[:, 0] if y.ndim == 1 else out


def encode(x: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """Container bytes (the stored encoding); Opus only takes a few rates, so OGG is resampled to 48 kHz."""
    y = np.asarray(x, dtype=np.float64)
    column = y[:, None] if y.ndim == 1 else y
    encoder = open_encoder(fmt, sample_rate, column.shape[1])
    streamed = encoder.push(column) + encoder.finish()
    return encoder.head + streamed[len(encoder.head):]
