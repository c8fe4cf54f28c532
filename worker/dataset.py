"""A voice's fine-tuning dataset, read from storage one clip at a time.

Guided enrollment writes the clips under the voice's ``dataset/`` prefix and lists them in
``dataset/list.txt`` (upstream's ``path|speaker|language|text``); every session that added takes later
writes its clips and a list.txt of their own under ``dataset/<session id>/``.
Fine-tuning trains on all of them; :class:`DatasetClips` fetches a clip only when data preparation
reaches it, so the job holds one clip's bytes at a time, never the whole dataset.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

from shared import keys
from shared.storage import Storage
from shared.tables import Voice, VoiceConsent

Item = tuple[bytes, str, str]  # (audio, transcript, language), as the engine's fine-tuning takes it


@dataclass(frozen=True)
class Entry:
    key: str
    language: str
    text: str


def parse_list(text: str, voice_prefix: str) -> list[Entry]:
    """The lines of a ``list.txt``; a line pointing outside the voice's own prefix is refused."""
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, _speaker, language, transcript = line.split("|", 3)
        if not key.startswith(voice_prefix):
            raise ValueError(f"dataset entry {key!r} lies outside the voice's storage")
        entries.append(Entry(key, language, transcript))
    return entries


class DatasetClips(Sequence[Item]):
    """The dataset as a sequence of items whose audio is read from storage on access."""

    def __init__(self, storage: Storage, entries: list[Entry]) -> None:
        self.storage, self.entries = storage, entries

    def __len__(self) -> int:
        return len(self.entries)

    @overload
    def __getitem__(self, index: int) -> Item: ...
    @overload
    def __getitem__(self, index: slice) -> list[Item]: ...

    def __getitem__(self, index: int | slice) -> Item | list[Item]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        entry = self.entries[index]
        return self.storage.get(entry.key), entry.text, entry.language

    def __iter__(self) -> Iterator[Item]:
        return (self[i] for i in range(len(self)))


def dataset_lists(storage: Storage, record: VoiceConsent) -> list[str]:
    """The enrollment's list.txt, then one per session that added takes (``dataset/<session>/list.txt``)."""
    folder = record.dataset_key.rsplit("/", 1)[0] + "/" if record.dataset_key else ""
    added = sorted(k for k in storage.list(folder) if k.endswith("/list.txt") and k != record.dataset_key)
    return [record.dataset_key or "", *added]


def voice_items(storage: Storage, voice: Voice, record: VoiceConsent | None) -> Sequence[Item]:
    """What a voice fine-tunes on: every clip of its dataset, or, for a one-clip voice, its reference."""
    if record is None or not record.dataset_key:
        return [(storage.get(voice.reference_key or ""), voice.transcript, voice.language)]
    prefix = keys.voice_prefix(voice.member_id, voice.id)
    entries = [e for key in dataset_lists(storage, record) for e in parse_list(storage.get(key).decode(), prefix)]
    return DatasetClips(storage, entries)
