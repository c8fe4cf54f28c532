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

import shutil
import struct
import tempfile
from typing import BinaryIO

import numpy as np

from contracts import FORMATS
from engine.errors import EngineError
from engine.exporting import PEAK_DBFS, PieceExporter
from engine.exporting.encoders import OPUS_RATES, open_encoder
from engine.exporting.limiter import StreamLimiter
from engine.watermark import metadata
from engine.watermark.keys import Keyring
from engine.watermark.labels import AigcLabel
from engine.watermark.streamdigest import StreamDigest

C2PA_FORMATS = ("wav", "flac", "mp3")  # what the C2PA SDK embeds into; Ogg files go unsigned
STREAM_LABELLED = ("wav", "flac", "ogg", "mp3")  # formats whose label StreamedLabel computes as the bytes pass
WAV_HEADER = 44  # the streamed and stored WAV header (engine.exporting.encoders.wav_header)
PUSH_SAMPLES = 1 << 16  # export_audio feeds its chain in pieces this long: the split never changes the result
SPOOL_PIECE = 1 << 20  # a spooled file is copied this much at a time
__all__ = ["C2PA_FORMATS", "FORMATS", "OPUS_RATES", "PEAK_DBFS", "STREAM_LABELLED", "StreamedLabel", "encode",
           "export_audio", "finish_stored", "limit_peaks", "read_label", "sign_spooled", "verify_label"]


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

    Every format (``STREAM_LABELLED``): the digest (``engine.watermark.streamdigest``) covers only
    bytes that are final as they pass, or, for MP3's first frame, takes them from the stored head
    at the end; the label lives in metadata at the file's start (WAV's LIST chunk before the data,
    FLAC's Vorbis comment block, Ogg's comment header page, MP3's ID3v2 tag), and the head replaces
    only the bytes up to where the digested audio starts. A C2PA manifest hashes the whole file:
    ``sign_spooled`` signs it from a spooled temporary file.
    """

    def __init__(self, fmt: str) -> None:
        if fmt not in STREAM_LABELLED:
            raise EngineError(f"no streamed label for {fmt!r}")
        self.fmt = fmt
        self._digest = StreamDigest(fmt)
        self.label: AigcLabel | None = None  # the label written, once finished

    def update(self, data: bytes) -> None:
        self._digest.update(data)

    @property
    def streamed_bytes(self) -> int:
        return self._digest.size

    @property
    def peak_held(self) -> int:
        """The most stream bytes the labeller held at once (bounded: see engine.watermark.streamdigest)."""
        return self._digest.peak_held

    def finish(self, exporter: PieceExporter, *, keyring: Keyring | None, label: AigcLabel | str) -> tuple[bytes, int]:
        """(head, replace): the stored file's labelled first bytes, and how many streamed bytes they
        replace; ``self.label`` is then the label written."""
        stored_head = exporter.stored_head
        digest = self._digest.finish(stored_head)
        aigc = label if isinstance(label, AigcLabel) else AigcLabel(produce_id=str(label))
        if keyring is not None:
            aigc = aigc.signed(keyring.primary, digest)
        self.label = aigc
        if self.fmt == "wav":
            return self._wav_head(stored_head, aigc), WAV_HEADER
        head, replace = metadata.labelled_head(stored_head, self._digest.size, aigc)
        # the bytes the encoder rewrote at close (MP3's first frame) come from the stored head too
        end = max(replace, self._digest.audio_at)
        return head + stored_head[replace:end], end

    def _wav_head(self, head: bytes, aigc: AigcLabel) -> bytes:
        data_bytes = struct.unpack("<I", head[40:44])[0]
        if len(head) != WAV_HEADER or data_bytes != self._digest.digested:
            raise EngineError("the WAV stream does not match its stored header")
        # The label's chunks over a header with no samples yet, then the real sizes (data comes last)
        labelled = bytearray(metadata.write_label(head[:40] + struct.pack("<I", 0), aigc))
        if labelled[-8:] != b"data" + bytes(4):
            raise EngineError("the labelled WAV header does not end with its data chunk")
        labelled[4:8] = struct.pack("<I", struct.unpack("<I", labelled[4:8])[0] + data_bytes)
        labelled[-4:] = struct.pack("<I", data_bytes)
        return bytes(labelled)


def sign_spooled(spool: BinaryIO, head: bytes, replace: int, *, c2pa_signer: object, keyring: Keyring | None,
                 label: AigcLabel | None) -> BinaryIO:
    """The C2PA-signed stored file, in a temporary file, from the streamed bytes spooled to ``spool``
    and the labelled head that replaces their first ``replace`` bytes. The manifest hashes the
    whole file, so it cannot be patched into a head: the file is spooled to disk instead of memory,
    copied in pieces, and the C2PA SDK signs it file to file (see engine.watermark.c2pa.sign_stream)."""
    from engine.watermark import c2pa

    labelled = tempfile.TemporaryFile()
    labelled.write(head)
    spool.seek(replace)
    shutil.copyfileobj(spool, labelled, SPOOL_PIECE)
    signed = tempfile.TemporaryFile()
    try:
        c2pa.sign_stream(labelled, signed, c2pa_signer, key_id=keyring.primary.id if keyring is not None else None,
                         label=label)  # fmt: skip
    except BaseException:
        signed.close()
        raise
    finally:
        labelled.close()
    signed.seek(0)
    return signed


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
    return label is not None and any(label.verify(keyring, d) for d in metadata.content_digests(data))


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
