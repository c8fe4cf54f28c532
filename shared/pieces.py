"""Per-job piece channel: a synthesis's finished encoded pieces, in order, for live listeners.

The worker (writer) publishes each encoded piece with its index and the job's progress, then an
end marker (with an error when the job failed or was cancelled, so listeners stop). Readers read
from the start and block for new pieces, so a listener that joins late still gets the whole stream.
A second attempt (a worker killed mid-job) publishes again from index 0 with the same bytes (its
seed and the chunks it reuses are the first attempt's): readers yield each index once, in order. Two backends share one interface: a Redis stream (XADD bounded by
MAXLEN, expiring with the job's result TTL) for Celery workers, and memory for the embedded
executor, which runs in the API process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import redis

MAX_PIECES = 10_000  # MAXLEN bound: a 3,000-character diary is a few hundred pieces


@dataclass(frozen=True)
class Piece:
    """One encoded piece (``data``), or the end marker (``end`` true, ``data`` empty, ``error`` set
    when the job did not succeed)."""

    index: int
    progress: float
    data: bytes
    end: bool = False
    error: str | None = None


class PieceChannel(Protocol):
    """Publish and read the pieces of one job, identified by its id."""

    def publish(self, job_id: str, index: int, progress: float, data: bytes) -> None: ...

    def finish(self, job_id: str, error: str | None = None) -> None: ...

    def reset(self, job_id: str) -> None:
        """Forget the job's pieces (a retried job streams afresh)."""
        ...

    def read(self, job_id: str, block_s: float = 30.0) -> Iterator[Piece]: ...


def _key(job_id: str) -> str:
    return f"echodiary:pieces:{job_id}"


class RedisPieceChannel:
    """Pieces in a Redis stream per job, readable from the start until the end marker."""

    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self._redis = client
        self._ttl_s = ttl_s

    def _add(self, job_id: str, fields: dict[str, bytes | str]) -> None:
        pipe = self._redis.pipeline()
        pipe.xadd(_key(job_id), fields, maxlen=MAX_PIECES, approximate=False)
        pipe.expire(_key(job_id), self._ttl_s)
        pipe.execute()

    def publish(self, job_id: str, index: int, progress: float, data: bytes) -> None:
        self._add(job_id, {"i": str(index), "p": f"{progress:.4f}", "d": data, "e": "0"})

    def finish(self, job_id: str, error: str | None = None) -> None:
        self._add(job_id, {"i": "-1", "p": "1", "d": b"", "e": "1", "x": error or ""})

    def reset(self, job_id: str) -> None:
        self._redis.delete(_key(job_id))

    def read(self, job_id: str, block_s: float = 30.0) -> Iterator[Piece]:
        """Yield pieces from the first; stop at the end marker or after ``block_s`` of silence."""
        return in_order(self._entries(job_id, block_s))

    def _entries(self, job_id: str, block_s: float) -> Iterator[Piece]:
        last = "0-0"
        while True:
            reply = self._redis.xread({_key(job_id): last}, block=int(block_s * 1000), count=64)
            if not reply:
                return
            for entry_id, fields in reply[0][1]:
                last = entry_id
                piece = _decode(fields)
                if piece.end:
                    yield piece
                    return
                yield piece


def _decode(fields: dict[bytes, bytes]) -> Piece:
    return Piece(
        index=int(fields[b"i"]),
        progress=float(fields[b"p"]),
        data=fields[b"d"],
        end=fields[b"e"] == b"1",
        error=fields.get(b"x", b"").decode() or None,
    )


def in_order(entries: Iterator[Piece]) -> Iterator[Piece]:
    """Each index once, in order: a later attempt's pieces already seen are skipped, and so is a
    piece past a gap (it cannot happen with one writer per attempt; a listener must never hear one)."""
    expected = 0
    for piece in entries:
        if piece.end:
            yield piece
            return
        if piece.index == expected:
            expected += 1
            yield piece


class MemoryPieceChannel:
    """The same channel in memory, for the embedded executor in the API process.

    Only the last ``KEEP_FINISHED`` finished jobs keep their pieces: a listener that comes after a
    job finished gets its stored file, so older ones only cost memory.
    """

    KEEP_FINISHED = 16

    def __init__(self) -> None:
        self._pieces: dict[str, list[Piece]] = {}
        self._finished: list[str] = []
        self._changed = threading.Condition()

    def _append(self, job_id: str, piece: Piece) -> None:
        with self._changed:
            self._pieces.setdefault(job_id, []).append(piece)
            self._changed.notify_all()

    def publish(self, job_id: str, index: int, progress: float, data: bytes) -> None:
        self._append(job_id, Piece(index, progress, data))

    def finish(self, job_id: str, error: str | None = None) -> None:
        self._append(job_id, Piece(-1, 1.0, b"", end=True, error=error))
        with self._changed:
            self._finished.append(job_id)
            while len(self._finished) > self.KEEP_FINISHED:
                self._pieces.pop(self._finished.pop(0), None)

    def reset(self, job_id: str) -> None:
        with self._changed:
            self._pieces.pop(job_id, None)

    def read(self, job_id: str, block_s: float = 30.0) -> Iterator[Piece]:
        return in_order(self._entries(job_id, block_s))

    def _entries(self, job_id: str, block_s: float) -> Iterator[Piece]:
        position = 0
        while True:
            with self._changed:
                got = self._changed.wait_for(
                    lambda seen=position: len(self._pieces.get(job_id, [])) > seen,
                    timeout=block_s,
                )
                if not got:
                    return
                pending = self._pieces.get(job_id, [])[position:]
            for piece in pending:
                position += 1
                yield piece
                if piece.end:
                    return
