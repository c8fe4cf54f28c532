"""The AIGC label in each container's own metadata, and a digest of the audio stream alone.

Carriers (one label per file, as GB 45438 asks): WAV: a ``LIST``/``INFO`` chunk with an ``AIGC``
entry (ffprobe shows it as the tag ``AIGC``); MP3: an ID3v2 ``TXXX`` frame described ``AIGC``;
FLAC and Ogg (Opus, Vorbis): a Vorbis comment ``AIGC=``. Reading also accepts a top-level ``AIGC``
RIFF chunk and an ID3 chunk in WAV.

The content digest covers only the coded audio (WAV data chunk, MP3 frames, FLAC frames, Ogg audio
packets), so writing or rewriting metadata, or adding a C2PA manifest, leaves it unchanged.
"""

from __future__ import annotations

import hashlib
import io
import struct

from engine.errors import EngineError
from engine.watermark.labels import AigcLabel

TAG = "AIGC"


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
        tags.save(buf, v2_version=3)
        return buf.getvalue()
    buf = io.BytesIO(data)
    audio = _vorbis_file(buf, fmt)
    if audio.tags is None:
        audio.add_tags()
    audio.tags[TAG] = [text]
    buf.seek(0)
    audio.save(buf)
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


def content_hasher(fmt: str) -> hashlib._Hash:
    """The digest's SHA-256 before any audio: ``content_digest`` and streamed files start from it."""
    return hashlib.sha256(f"echodiary.content.v1.{fmt}\n".encode())


def content_digest(data: bytes) -> bytes:
    """SHA-256 of the coded audio stream, independent of metadata."""
    fmt = _format_or_raise(data)
    h = content_hasher(fmt)
    if fmt == "wav":
        for cid, start, size in _riff_chunks(data):
            if cid == b"data":
                h.update(data[start:start + size])
                break
        else:
            raise EngineError("the WAV file has no data chunk")
    elif fmt == "mp3":
        end = len(data) - 128 if data[-128:-125] == b"TAG" else len(data)
        h.update(data[_id3v2_end(data):end])
    elif fmt == "flac":
        h.update(data[_flac_audio_start(data):])
    else:
        for i, packet in enumerate(_ogg_packets(data)):
            if i != 1:  # packet 1 is the comment header (OpusTags / Vorbis comments): metadata
                h.update(struct.pack(">I", len(packet)) + packet)
    return h.digest()


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
