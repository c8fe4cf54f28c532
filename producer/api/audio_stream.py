"""A job's audio over HTTP as it renders: a chunked body of the file's bytes, or server-sent events.

Raw: the bytes of the job's format as the export chain makes them (WAV: its header with streaming
sizes, then PCM; FLAC, Ogg Opus, MP3 as encoded). A job that stops before its end breaks the
connection instead of ending the body, so no client takes a cut stream for the whole file.
Events (``Accept: text/event-stream``): ``audio`` with ``{"index", "progress", "audio": base64}``,
then ``done`` (``{"job_id", "format"}``) or ``error`` (``{"detail"}``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

from fastapi.responses import StreamingResponse

from shared.listening import JobAudio
from shared.storage import CONTENT_TYPES

EVENT_STREAM = "text/event-stream"
NO_BUFFERING = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}  # proxies pass pieces on at once


class StreamBroken(Exception):
    """The job stopped (failed, cancelled) while its audio was being sent."""


def wants_events(accept: str | None) -> bool:
    return EVENT_STREAM in (accept or "")


def audio_response(audio: JobAudio, events: bool) -> StreamingResponse:
    if events:
        return StreamingResponse(_events(audio), media_type=EVENT_STREAM, headers=NO_BUFFERING)
    return StreamingResponse(_raw(audio), media_type=CONTENT_TYPES[audio.format], headers=NO_BUFFERING)


def _raw(audio: JobAudio) -> Iterator[bytes]:
    for piece in audio.pieces:
        if piece.end and piece.error:
            raise StreamBroken(f"job {audio.job_id}: {piece.error}")
        if piece.data:
            yield piece.data


def sse(event: str | None, data: dict) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _events(audio: JobAudio) -> Iterator[bytes]:
    for piece in audio.pieces:
        if piece.end:
            if piece.error:
                yield sse("error", {"detail": piece.error})
            else:
                yield sse("done", {"job_id": audio.job_id, "format": audio.format})
            return
        yield sse("audio", {"index": piece.index, "progress": piece.progress,
                            "audio": base64.b64encode(piece.data).decode()})
