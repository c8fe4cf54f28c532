"""Chunk audio caches, keyed by a chunk's stable id (its text, the voice, the weights and the
parameters that change its sound): re-rendering an edited diary synthesises only changed chunks."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

import numpy as np


def stable_hash(obj: object) -> str:
    """A hex digest of ``obj``'s JSON form: the same on every machine and every run."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def chunk_id(text: str, voice: str, model_id: str, sound: object, reader: str) -> str:
    """A chunk's cache key: everything that changes how it sounds (``reader``: which Chinese reader,
    g2pW or pypinyin, read the text), and nothing else."""
    return stable_hash([text, voice, model_id, sound, reader])[:32]


def early_chunk_id(chunk_id: str) -> str:
    """The cache key of a first chunk that starts early: its start is an approximation, so it is kept
    apart from the exact chunk (a re-read that starts early reuses it, an exact render does not)."""
    return stable_hash([chunk_id, "early start"])[:32]


class ChunkCache(Protocol):
    def contains(self, key: str) -> bool: ...  # without loading it: a render loads each when it plays it
    def get(self, key: str) -> np.ndarray | None: ...
    def put(self, key: str, audio: np.ndarray) -> None: ...


class MemoryChunkCache:
    """A bounded in-process LRU of chunk audio."""

    def __init__(self, max_chunks: int = 4096) -> None:
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self.max_chunks = max_chunks

    def contains(self, key: str) -> bool:
        return key in self._items

    def get(self, key: str) -> np.ndarray | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: str, audio: np.ndarray) -> None:
        self._items[key] = audio
        self._items.move_to_end(key)
        while len(self._items) > self.max_chunks:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class FolderChunkCache:
    """Chunk audio as ``.npy`` files in a folder (embedded mode keeps it under the data folder)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.npy"

    def contains(self, key: str) -> bool:
        return self._path(key).exists()

    def get(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        return np.load(path, allow_pickle=False) if path.exists() else None

    def put(self, key: str, audio: np.ndarray) -> None:
        tmp = self._path(key).with_suffix(".tmp.npy")
        np.save(tmp, audio.astype(np.float32), allow_pickle=False)
        tmp.replace(self._path(key))
