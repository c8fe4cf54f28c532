"""The watermark beyond the export: whose job a found file is, marking a file, the server's keys.

Detection itself is :func:`worker.pipeline.detect` (the one entry point); the API route, the
embedded client and the command line come through here or there, so that nothing outside
``worker/`` imports the engine. The engine loads lazily, inside each call.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared import service
from shared.schemas import FORMATS, WatermarkReport, timestamp
from shared.service import Backend
from shared.settings import Settings
from shared.tables import Member
from worker import pipeline
from worker.pipeline import decode_audio, watermark_keyring

MARK_BITS = 48


class DetectionUnavailable(service.Unavailable):
    """This build cannot detect marks (the engine's watermark modules are missing)."""


def report(backend: Backend, member: Member, audio: bytes) -> WatermarkReport:
    """Detect the mark in a file and name the job only when it is the member's own."""
    try:
        found = pipeline.detect(backend.settings, audio)
    except ImportError as exc:
        raise DetectionUnavailable("watermark detection is not available in this build") from exc
    except Exception as exc:
        raise service.UnsupportedMedia("the file is not audio we can read; send WAV, FLAC, OGG or MP3") from exc
    job = service.find_job_by_mark(backend, member, found.mark) if found.mark is not None else None
    return WatermarkReport(present=found.present, mac_ok=found.mac_ok, z=found.z,
                           false_positive_bound=found.false_positive_bound, mine=job is not None,
                           job_id=job.id if job else None, voice_id=job.voice_id if job else None,
                           created_at=timestamp(job.created_at) if job else None)


@dataclass
class KeyInfo:
    id: str
    role: str  # primary, active (still tried when detecting) or retired
    created: str


def parse_mark(text: str) -> int:
    """A mark written as up to 12 hex digits (48 bits); ValueError otherwise."""
    digits = text.removeprefix("0x")
    value = int(digits, 16)
    if not digits or len(digits) > MARK_BITS // 4 or value < 0:
        raise ValueError(f"a mark is at most {MARK_BITS // 4} hex digits, not {text!r}")
    return value


def embed_mark(settings: Settings, audio: bytes, fmt: str, mark: int) -> bytes:
    """``audio`` marked with ``mark`` under the primary key, encoded as ``fmt`` (levels left as they are)."""
    from engine.export import encode
    from engine.watermark import embed, pack_payload

    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    samples, rate = decode_audio(audio)
    marked = embed(samples, rate, watermark_keyring(settings).primary, pack_payload(mark))
    return encode(marked, rate, fmt)


def list_keys(settings: Settings) -> list[KeyInfo]:
    """The watermark keys (ids only; the secrets stay in the data folder)."""
    ring = watermark_keyring(settings)
    return [KeyInfo(key.id, "primary" if key.id == ring.primary_id else ("active" if key.active else "retired"),
                    str(key.created)) for key in ring.keys]  # fmt: skip


def rotate_key(settings: Settings) -> str:
    """Make a new primary key (older keys stay active for detection); returns its id."""
    return watermark_keyring(settings).rotate().id
