"""``metadata.content_digest`` of a streamed file, computed as its bytes pass (issue #15).

For the files our encoders stream (engine.exporting.encoders): every digested byte is final when
it passes, except those the encoder rewrites at close, which all lie in the file's first
``HEAD_BYTES`` before the digested audio starts, or are digested last by definition:

* WAV: the 44-byte header (sizes) is not digested; the data chunk is, as it passes.
* FLAC: the metadata blocks (STREAMINFO is rewritten at close) are not digested; the frames are.
* MP3 (digest version 2): the first frame, LAME's Xing/Info frame, is rewritten at close; it is
  digested last, from the stored head. The last 128 bytes wait in case they are an ID3v1 tag.
* Ogg: nothing is rewritten; pages are parsed as they pass and each packet but the comment
  header digested once complete.

Held at any time: the stream's first ``HEAD_BYTES`` (to find where the audio starts and to check
the stored head against what was digested), plus an Ogg page and packet or the MP3 tail: bounded,
whatever the file's length (``peak_held`` records it).
"""

from __future__ import annotations

import io

from engine.errors import EngineError
from engine.exporting.encoders import HEAD_BYTES  # the stored head (rewritten at close) never reaches further
from engine.watermark import metadata

ID3V1 = 128


class StreamDigest:
    """``update`` each streamed piece in order, then ``finish(stored_head)``: the file's content digest."""

    def __init__(self, fmt: str) -> None:
        if fmt not in ("wav", "flac", "mp3", "ogg"):
            raise EngineError(f"no streamed digest for {fmt!r}")
        self.fmt = fmt
        self._hash = metadata.content_hasher(fmt)
        self._start = bytearray()  # the stream's first HEAD_BYTES
        self._audio_at: int | None = None  # where the digested bytes start (WAV, FLAC, MP3)
        self._tail = bytearray()  # MP3: the last bytes, maybe an ID3v1 tag
        self._page = bytearray()  # Ogg: the page not complete yet
        self._packet: list[bytes] | None = None  # Ogg: the packet not known complete yet
        self._packets = 0  # Ogg: packets digested or skipped
        self._serial: int | None = None
        self.size = 0  # bytes passed
        self.digested = 0  # bytes hashed as they passed
        self.peak_held = 0  # the most bytes held at once

    def update(self, data: bytes) -> None:
        taken = min(len(data), HEAD_BYTES - len(self._start))
        self._start += data[:taken]
        self.size += len(data)
        if self.fmt == "ogg":
            self._ogg_update(data)
        elif self._audio_at is not None:
            self._feed(data)
        else:
            self._audio_at = self._locate(bytes(self._start), final=len(self._start) == HEAD_BYTES)
            if self._audio_at is not None:
                self._feed(bytes(self._start[self._audio_at :]) + data[taken:])
        self.peak_held = max(self.peak_held, self.held)

    @property
    def audio_at(self) -> int:
        """Where the digested bytes start: the stream's bytes before it may differ from the stored ones."""
        return self._audio_at or 0

    @property
    def held(self) -> int:
        return len(self._start) + len(self._tail) + len(self._page) + sum(map(len, self._packet or []))

    def finish(self, stored_head: bytes) -> bytes:
        """The digest, given the stored file's first bytes (the encoder's head as rewritten at close)."""
        if self.fmt == "ogg":
            if self._page:
                raise EngineError("the Ogg stream ends inside a page")
            self._flush_packet()
            at = 0
        else:
            at = self._audio_at
            if at is None or self._locate(stored_head, final=True) != at:
                raise EngineError(f"the {self.fmt} stream's audio does not start where its stored head says")
        if len(stored_head) > len(self._start) or stored_head[at:] != self._start[at : len(stored_head)]:
            raise EngineError(f"the {self.fmt} encoder rewrote bytes that were digested as they passed")
        if self.fmt == "mp3":
            tail = bytes(self._tail)
            if not (len(tail) == ID3V1 and tail[:3] == b"TAG"):
                self._hash.update(tail)
            start = metadata.metadata_end(stored_head, "mp3")
            self._hash.update(stored_head[start:at])  # the first frame, as rewritten at close
        return self._hash.digest()

    def _locate(self, head: bytes, *, final: bool) -> int | None:
        """Where the digested bytes start, once ``head`` shows it (None: not yet; raises if never)."""
        try:
            if self.fmt == "wav":
                if len(head) >= 44 and head[:4] == b"RIFF" and head[36:40] == b"data":
                    return 44
                raise EngineError("not the encoder's 44-byte WAV header")
            at = metadata.metadata_end(head, self.fmt)
            if self.fmt == "mp3":  # skip the first frame too (once its header and an ID3 header could show)
                at = at + metadata.mp3_first_frame_length(head, at) if len(head) >= at + 10 else len(head) + 1
            if len(head) >= at:
                return at
        except EngineError:
            if final or (self.fmt == "wav" and len(head) >= 44):
                raise
            return None
        if final:
            raise EngineError(
                f"the {self.fmt} stream's metadata does not fit in its first {HEAD_BYTES} bytes"
            )
        return None

    def _feed(self, data: bytes) -> None:
        if self.fmt != "mp3":
            self._digest(data)
            return
        self._tail += data
        if len(self._tail) > ID3V1:
            self._digest(bytes(self._tail[:-ID3V1]))
            del self._tail[:-ID3V1]

    def _digest(self, data: bytes) -> None:
        self._hash.update(data)
        self.digested += len(data)

    def _ogg_update(self, data: bytes) -> None:
        from mutagen.ogg import OggPage

        self._page += data
        while len(self._page) >= 27:
            segments = self._page[26]
            if len(self._page) < 27 + segments:
                return
            end = 27 + segments + sum(self._page[27 : 27 + segments])
            if len(self._page) < end:
                return
            page = OggPage(io.BytesIO(bytes(self._page[:end])))
            del self._page[:end]
            self._serial = page.serial if self._serial is None else self._serial
            if page.serial == self._serial:  # only the first logical stream, as content_digest
                self._ogg_packets(page)

    def _ogg_packets(self, page) -> None:  # noqa: ANN001 - a mutagen OggPage
        """The packets as ``OggPage.to_packets`` joins them: a continued page's first part ends the last."""
        for i, part in enumerate(page.packets):
            if i == 0 and page.continued:
                self._packet = (self._packet or [b""]) + [part]
            else:
                self._flush_packet()
                self._packet = [part]

    def _flush_packet(self) -> None:
        if self._packet is None:
            return
        if self._packets != 1:  # packet 1 is the comment header: metadata
            self._digest(metadata.ogg_packet_digested(b"".join(self._packet)))
        self._packets += 1
        self._packet = None
