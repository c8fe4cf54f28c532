"""Finished chunks of a running synthesis, kept in storage until the job ends.

The engine gives every chunk a stable id (its text, voice, weights and sound parameters). When a
worker dies mid-job, the worker that takes the job over finds the chunks already done here and
synthesises only the rest; the chunks are deleted once the job has its outcome.
"""

from __future__ import annotations

import logging

import numpy as np

from shared import keys
from shared.storage import NotFound, Storage

log = logging.getLogger(__name__)


class StorageChunkCache:
    def __init__(self, storage: Storage, member_id: str, job_id: str) -> None:
        self.storage, self.member_id, self.job_id = storage, member_id, job_id
        self.reused = 0

    def _key(self, chunk_id: str) -> str:
        return keys.chunk_key(self.member_id, self.job_id, chunk_id)

    def contains(self, key: str) -> bool:
        return keys.is_id(key) and self.storage.exists(self._key(key))

    def get(self, key: str) -> np.ndarray | None:
        if not keys.is_id(key):
            return None
        try:
            data = self.storage.get(self._key(key))
        except NotFound:
            return None
        self.reused += 1
        return np.frombuffer(data, dtype="<f4").copy()

    def put(self, key: str, audio: np.ndarray) -> None:
        if keys.is_id(key):
            self.storage.put(self._key(key),
                             np.asarray(audio, dtype="<f4").tobytes())

    def clear(self) -> None:
        try:
            self.storage.delete_prefix(keys.chunks_prefix(self.member_id, self.job_id))
        except Exception:  # the result is safe; leftover chunks go with the job's prefix later
            log.warning("could not delete the chunks of job %s", self.job_id, exc_info=True)


class VoiceChunkCache(StorageChunkCache):
    """The embedded mode's chunks: kept with the voice across jobs, so re-rendering an edited diary
    synthesises only the chunks that changed (ids are stable); they go when the voice is deleted."""

    def __init__(self, storage: Storage, member_id: str, voice_id: str, job_id: str) -> None:
        super().__init__(storage, member_id, job_id)
        self.voice_id = voice_id

    def _key(self, chunk_id: str) -> str:
        return keys.voice_chunk_key(self.member_id, self.voice_id, chunk_id)

    def clear(self) -> None:
        """Nothing to do: the chunks stay valid for later jobs in this voice."""
