"""The AIGC label in each container's own metadata, and a digest of the audio stream alone.

Carriers (one label per file, as GB 45438 asks): WAV: a ``LIST``/``INFO`` chunk with an ``AIGC``
entry (ffprobe shows it as the tag ``AIGC``); MP3: an ID3v2 ``TXXX`` frame described ``AIGC``;
FLAC and Ogg (Opus, Vorbis): a Vorbis comment ``AIGC=``. Reading also accepts a top-level ``AIGC``
RIFF chunk and an ID3 chunk in WAV.

The content digest covers only the coded audio (WAV data chunk, MP3 frames, FLAC frames, Ogg audio
packets), so writing or rewriting metadata, or adding a C2PA manifest, leaves it unchanged.

MP3 digests are version 2: the first frame (the encoder's Xing/Info frame, which it rewrites at
close with the file's totals and a CRC of the others) is digested after the other frames, so a streamed file
can be digested as its bytes pass (``engine.watermark.streamdigest``). Version 1 (the frames in
file order) is what earlier MP3 files were signed with: verification accepts both
(``content_digests``).

``labelled_head`` writes the label into the first bytes of a FLAC, Ogg or MP3 file alone (its
metadata), with the padding ``write_label`` would choose for the whole file: the streamed path
patches only that head.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mutagen import PaddingInfo

from engine.errors import EngineError
from engine.watermark.labels import AigcLabel

TAG = "AIGC"
DIGEST_VERSION = {"mp3": 2}  # formats whose current digest is not version 1 (see the module's notes)


def detect_format(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"OggS":
        return "ogg"
    start = _id3v2_end(data)
    if data[start:start + 4] == b"fLaC":
        return "flac"
    if len(data) > start + 1 and data[start] == 0xFF and (data[start + 1] & 0xE0) == 0xE0:
        return "mp3"
    return None


def write_label(data: bytes, label: AigcLabel) -> bytes:
    """``data`` with its AIGC label set to ``label`` (any earlier AIGC label is replaced)."""
    fmt = _format_or_raise(data)
    text = label.to_json()
    if fmt == "wav":
        return _wav_write(data, text)
    return _container_write(data, fmt, text)


def labelled_head(head: bytes, size: int, label: AigcLabel) -> tuple[bytes, int]:
    """(new_head, replace) for a FLAC, Ogg or MP3 file of ``size`` bytes whose first bytes are ``head``
    (all its metadata at least): ``write_label(data, label) == new_head + data[replace:]``, where
    ``replace`` is where its metadata ends. Only the head is read, so the file need not be in memory."""
    from mutagen import PaddingInfo

    fmt = _format_or_raise(head)
    if fmt == "wav":
        raise EngineError("a WAV head is labelled by engine.export.StreamedLabel")
    end = metadata_end(head, fmt)
    missing = size - end  # the bytes after the metadata: mutagen's padding grows with them

    def padding(info: PaddingInfo) -> int:
        return PaddingInfo(info.padding, info.size + missing).get_default_padding()

    labelled = _container_write(head[:end], fmt, label.to_json(), padding=padding)
    if fmt == "ogg" and _ogg_last_sequence(labelled) != _ogg_last_sequence(head[:end]):
        # mutagen would renumber every later page: no head patch can do that (libsndfile's comment
        # header has room for our label, so this does not happen with our encoder)
        raise EngineError("the labelled Ogg comment header needs more pages than the stream's")
    return labelled, end


def metadata_end(data: bytes, fmt: str) -> int:
    """Where a FLAC, Ogg or MP3 file's metadata ends and its audio (the digested bytes) begins."""
    try:
        if fmt == "flac":
            return _flac_audio_start(data)
        if fmt == "mp3":
            return _id3v2_end(data)
        if fmt == "ogg":
            return _ogg_comment_end(data)
    except (IndexError, ValueError) as exc:  # a head cut inside the metadata
        raise EngineError(f"the {fmt} head does not hold all its metadata") from exc
    raise EngineError(f"no metadata end for {fmt}")


def _container_write(data: bytes, fmt: str, text: str, padding: Callable[[PaddingInfo], int] | None = None) -> bytes:
    if fmt == "mp3":
        from mutagen.id3 import ID3, TXXX, ID3NoHeaderError

        buf = io.BytesIO(data)
        try:
            tags = ID3(buf)
        except ID3NoHeaderError:
            tags = ID3()
        tags.delall(f"TXXX:{TAG}")
        tags.add(TXXX(encoding=0, desc=TAG, text=[text]))  # the JSON is ASCII: plain bytes in v2.3
        buf.seek(0)
        tags.save(buf, v2_version=3, padding=padding)
        return buf.getvalue()
    buf = io.BytesIO(data)
    audio = _vorbis_file(buf, fmt)
    if audio.tags is None:
        audio.add_tags()
    audio.tags[TAG] = [text]
    buf.seek(0)
    audio.save(buf, padding=padding)
    return buf.getvalue()


def read_label(data: bytes) -> AigcLabel | None:
    """The AIGC label in ``data``'s metadata, or None when there is none (or it is not valid JSON)."""
    fmt = detect_format(data)
    text = None
    try:
        if fmt == "wav":
            text = _wav_read(data)
        elif fmt == "mp3":
            from mutagen.id3 import ID3, ID3NoHeaderError

            try:
                frames = ID3(io.BytesIO(data)).getall(f"TXXX:{TAG}")
            except ID3NoHeaderError:
                frames = []
            text = str(frames[0].text[0]) if frames else None
        elif fmt in ("flac", "ogg"):
            audio = _vorbis_file(io.BytesIO(data), fmt)
            values = audio.tags.get(TAG) if audio.tags is not None else None
            text = values[0] if values else None
    except Exception:  # a damaged container has no readable label
        return None
    if text is None:
        return None
    try:
        return AigcLabel.from_json(text)
    except ValueError:
        return None


def content_hasher(fmt: str, version: int | None = None) -> hashlib._Hash:
    """The digest's SHA-256 before any audio: ``content_digest`` and streamed files start from it."""
    version = DIGEST_VERSION.get(fmt, 1) if version is None else version
    return hashlib.sha256(f"echodiary.content.v{version}.{fmt}\n".encode())


def content_digest(data: bytes, version: int | None = None) -> bytes:
    """SHA-256 of the coded audio stream, independent of metadata (the current version by default)."""
    fmt = _format_or_raise(data)
    h = content_hasher(fmt, version)
    if fmt == "wav":
        for cid, start, size in _riff_chunks(data):
            if cid == b"data":
                h.update(data[start:start + size])
                break
        else:
            raise EngineError("the WAV file has no data chunk")
    elif fmt == "mp3":
        start = _id3v2_end(data)
        end = len(data) - 128 if data[-128:-125] == b"TAG" else len(data)
        first = 0 if version == 1 else min(mp3_first_frame_length(data, start), end - start)
        h.update(data[start + first:end])
        h.update(data[start:start + first])  # version 2: the first frame (rewritten at close) last
    elif fmt == "flac":
        h.update(data[_flac_audio_start(data):])
    else:
        for i, packet in enumerate(_ogg_packets(data)):
            if i != 1:  # packet 1 is the comment header (OpusTags / Vorbis comments): metadata
                h.update(ogg_packet_digested(packet))
    return h.digest()


def content_digests(data: bytes) -> list[bytes]:
    """Every digest a label on ``data`` may have been signed with: the current one, then older versions."""
    fmt = _format_or_raise(data)
    return [content_digest(data)] + ([content_digest(data, version=1)] if fmt in DIGEST_VERSION else [])


def ogg_packet_digested(packet: bytes) -> bytes:
    return struct.pack(">I", len(packet)) + packet


# MPEG audio layer III: bitrates (kbit/s) by index, for MPEG-1 and MPEG-2/2.5, and sample rates
_MP3_BITRATES = ((0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
                 (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160))
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def mp3_first_frame_length(data: bytes, start: int) -> int:
    """The length of the layer III frame at ``start`` (0 when there is none: then nothing moves)."""
    header = data[start:start + 4]
    if len(header) < 4 or header[0] != 0xFF or (header[1] & 0xE0) != 0xE0 or (header[1] >> 1) & 3 != 1:
        return 0
    version, bitrate_index, rate_index = (header[1] >> 3) & 3, header[2] >> 4, (header[2] >> 2) & 3
    if version == 1 or bitrate_index in (0, 15) or rate_index == 3:
        return 0
    bitrate = _MP3_BITRATES[0 if version == 3 else 1][bitrate_index] * 1000
    return (144 if version == 3 else 72) * bitrate // _MP3_RATES[version][rate_index] + ((header[2] >> 1) & 1)


# --- containers ----------------------------------------------------------------------------------

def _format_or_raise(data: bytes) -> str:
    fmt = detect_format(data)
    if fmt is None:
        raise EngineError("not a WAV, FLAC, Ogg or MP3 file")
    return fmt


def _vorbis_file(buf: io.BytesIO, fmt: str):  # noqa: ANN202 - a mutagen FileType
    if fmt == "flac":
        from mutagen.flac import FLAC

        return FLAC(buf)
    head = buf.getvalue()[28:36]
    buf.seek(0)
    if head.startswith(b"OpusHead"):
        from mutagen.oggopus import OggOpus

        return OggOpus(buf)
    from mutagen.oggvorbis import OggVorbis

    return OggVorbis(buf)


def _id3v2_end(data: bytes) -> int:
    """Offset just past any ID3v2 tags at the start."""
    pos = 0
    while data[pos:pos + 3] == b"ID3" and len(data) >= pos + 10:
        size = 0
        for b in data[pos + 6:pos + 10]:
            size = (size << 7) | (b & 0x7F)
        footer = 10 if data[pos + 5] & 0x10 else 0
        pos += 10 + size + footer
    return pos


def _flac_audio_start(data: bytes) -> int:
    pos = _id3v2_end(data) + 4
    while True:
        header = data[pos]
        size = int.from_bytes(data[pos + 1:pos + 4], "big")
        pos += 4 + size
        if header & 0x80:
            return pos


def _ogg_comment_end(data: bytes) -> int:
    """The offset just past the page that completes the first stream's comment header (packet 1)."""
    from mutagen.ogg import OggPage

    buf = io.BytesIO(data)
    pages: list[OggPage] = []
    while True:
        try:
            page = OggPage(buf)
        except Exception as exc:  # the head ends before the comment header does
            raise ValueError("no complete comment header") from exc
        if pages and page.serial != pages[0].serial:
            continue
        pages.append(page)
        packets = len(OggPage.to_packets(pages, strict=False))
        if packets - (not page.complete) >= 2:
            return buf.tell()


def _ogg_last_sequence(data: bytes) -> int:
    from mutagen.ogg import OggPage

    buf, sequence = io.BytesIO(data), -1
    while buf.tell() < len(data):
        sequence = OggPage(buf).sequence
    return sequence


def _ogg_packets(data: bytes) -> list[bytes]:
    """Packets of the first logical stream."""
    from mutagen.ogg import OggPage

    buf = io.BytesIO(data)
    pages = []
    while buf.tell() < len(data):
        page = OggPage(buf)
        if pages and page.serial != pages[0].serial:
            continue
        pages.append(page)
    return OggPage.to_packets(pages, strict=False)


def _riff_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(id, payload offset, payload size) of the top-level chunks of a RIFF/WAVE file."""
    chunks = []
    pos = 12
    while pos + 8 <= len(data):
        cid = data[pos:pos + 4]
        size = struct.unpack("<I", data[pos + 4:pos + 8])[0]
        chunks.append((cid, pos + 8, min(size, len(data) - pos - 8)))
        pos += 8 + size + (size & 1)
    return chunks


def _info_entries(payload: bytes) -> list[tuple[bytes, bytes]]:
    entries, pos = [], 4  # skip the "INFO" list type
    while pos + 8 <= len(payload):
        cid = payload[pos:pos + 4]
        size = struct.unpack("<I", payload[pos + 4:pos + 8])[0]
        entries.append((cid, payload[pos + 8:pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return entries


def _chunk(cid: bytes, payload: bytes) -> bytes:
    return cid + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")


def _wav_write(data: bytes, text: str) -> bytes:
    """Rebuild the RIFF: the AIGC entry joins (or starts) the LIST/INFO chunk, placed before data."""
    value = text.encode() + b"\0"
    chunks = _riff_chunks(data)
    entries = [(k, v) for cid, start, size in chunks if cid == b"LIST" and data[start:start + 4] == b"INFO"
               for k, v in _info_entries(data[start:start + size]) if k != b"AIGC"]
    info = _chunk(b"LIST", b"INFO" + b"".join(_chunk(k, v) for k, v in [*entries, (b"AIGC", value)]))
    body = b""
    for cid, start, size in chunks:
        payload = data[start:start + size]
        if cid == b"AIGC" or (cid == b"LIST" and payload[:4] == b"INFO"):
            continue
        if cid == b"data":
            body += info
        body += _chunk(cid, payload)
    if info not in body:
        raise EngineError("the WAV file has no data chunk")
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def _wav_read(data: bytes) -> str | None:
    for cid, start, size in _riff_chunks(data):
        payload = data[start:start + size]
        if cid == b"LIST" and payload[:4] == b"INFO":
            for k, v in _info_entries(payload):
                if k == b"AIGC":
                    return v.rstrip(b"\0").decode()
        elif cid == b"AIGC":
            return payload.rstrip(b"\0").decode()
        elif cid in (b"id3 ", b"ID3 "):
            from mutagen.id3 import ID3

            frames = ID3(io.BytesIO(payload)).getall(f"TXXX:{TAG}")
            if frames:
                return str(frames[0].text[0])
    return None
