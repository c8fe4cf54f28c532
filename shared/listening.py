"""Listening to a synthesis: its audio pieces while it renders, its stored file once it is done.

The service behind ``GET /v1/jobs/{id}/audio``, the OpenAI-compatible speech endpoint and the
clients' ``stream_audio``. Ownership and expiry are a download's: another member's job is not
found, an expired result is gone. A listener that joins late reads the job's channel from its first
piece; one that comes after the job succeeded gets the stored file as one piece.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from shared import service
from shared.pieces import Piece
from shared.service import Backend, Conflict
from shared.tables import ACTIVE, SUCCEEDED, SYNTHESIS, Job, Member

WAIT_S = 2.0  # how long one read of the channel blocks before the job's row is looked at again


@dataclass
class JobAudio:
    """What a listener gets: the job's format and its pieces, the last one the end marker."""

    job_id: str
    format: str
    pieces: Iterator[Piece]


def open_audio(backend: Backend, member: Member, job_id: str) -> JobAudio:
    """The member's synthesis as pieces; refusals (not found, failed, expired) are raised here, before
    any audio, so the API can still answer with a status."""
    job = _listenable(backend, member, job_id)
    if job.status == SUCCEEDED:
        return JobAudio(job.id, job.format, _stored(backend, job))
    return JobAudio(job.id, job.format, _live(backend, member, job.id))


def _listenable(backend: Backend, member: Member, job_id: str) -> Job:
    with backend.db.read() as session:
        job = service.own_job(session, member, job_id)
        session.expunge(job)
    if job.kind != SYNTHESIS:
        raise Conflict(f"job {job_id} is a {job.kind} job; only a synthesis has audio")
    if job.status == SUCCEEDED and (not job.result_key or (job.expires_at or 0) <= time.time()):
        raise Conflict(f"the audio of job {job_id} has expired; submit the entry again")
    if job.status not in (*ACTIVE, SUCCEEDED):
        raise Conflict(f"job {job_id} {job.status}{': ' + job.error if job.error else ''}; it has no audio")
    return job


def _stored(backend: Backend, job: Job) -> Iterator[Piece]:
    yield Piece(0, 1.0, backend.storage.get(job.result_key or ""))
    yield Piece(-1, 1.0, b"", end=True)


def _live(backend: Backend, member: Member, job_id: str) -> Iterator[Piece]:
    """The channel's pieces, each index once, up to the end marker. While the channel is silent the
    job's row decides: still active, keep waiting; succeeded with nothing heard yet (its pieces were
    never published, or expired), the stored file; anything else ends the stream with the reason."""
    channel = service.piece_channel(backend)
    expected = 0
    while True:
        for piece in channel.read(job_id, block_s=WAIT_S):
            if piece.end:
                yield piece
                return
            if piece.index == expected:
                expected += 1
                yield piece
        with backend.db.read() as session:
            job = session.get(Job, job_id)
            status = job.status if job is not None and job.member_id == member.id else "deleted"
            if job is not None:
                session.expunge(job)
        if status in ACTIVE:
            continue
        if status == SUCCEEDED and expected == 0:
            yield from _stored(backend, job)
            return
        yield Piece(-1, 1.0, b"", end=True, error=f"the job ended ({status}) before its stream did")
        return
