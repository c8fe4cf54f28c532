"""Object keys in storage, built from database ids only.

A key never contains anything a member typed (names, transcripts, file names), so no input can
reach another member's prefix or escape the bucket. Every id is checked against the id shape
before it becomes part of a key. Keys are deterministic: a redelivered job writes the same key
again instead of a second object.
"""

from __future__ import annotations

import re
import uuid

from contracts import FORMATS

_ID = re.compile(r"^[0-9a-f]{32}$")


def new_id() -> str:
    """A fresh random id (32 lowercase hex digits)."""
    return uuid.uuid4().hex


def is_id(value: str) -> bool:
    return bool(_ID.match(value))


def _checked(value: str, what: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise ValueError(f"{what} {value!r} is not an id")
    return value


def member_prefix(member_id: str) -> str:
    return f"members/{_checked(member_id, 'member id')}/"


def voice_prefix(member_id: str, voice_id: str) -> str:
    return f"{member_prefix(member_id)}voices/{_checked(voice_id, 'voice id')}/"


def reference_key(member_id: str, voice_id: str) -> str:
    """The uploaded recording, kept as the member sent it (fine-tuning reads it again)."""
    return voice_prefix(member_id, voice_id) + "reference.audio"


def profile_key(member_id: str, voice_id: str) -> str:
    return voice_prefix(member_id, voice_id) + "profile.safetensors"


def finetune_key(member_id: str, voice_id: str, job_id: str) -> str:
    return voice_prefix(member_id, voice_id) + f"finetune/{_checked(job_id, 'job id')}.bin"


def job_prefix(member_id: str, job_id: str) -> str:
    return f"{member_prefix(member_id)}jobs/{_checked(job_id, 'job id')}/"


def result_key(member_id: str, job_id: str, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    return job_prefix(member_id, job_id) + f"result.{fmt}"


def chunk_key(member_id: str, job_id: str, chunk_id: str) -> str:
    """A finished chunk of a running job, kept until the job ends (a takeover reuses it)."""
    return job_prefix(member_id, job_id) + f"chunks/{_checked(chunk_id, 'chunk id')}.f32"


def voice_chunk_key(member_id: str, voice_id: str, chunk_id: str) -> str:
    """A finished chunk kept with its voice (embedded mode), so a re-rendered diary reuses it."""
    return voice_prefix(member_id, voice_id) + f"chunks/{_checked(chunk_id, 'chunk id')}.f32"


def chunks_prefix(member_id: str, job_id: str) -> str:
    return job_prefix(member_id, job_id) + "chunks/"


def style_prefix(member_id: str, voice_id: str, style_id: str) -> str:
    """A voice's style (persona): its reference recording and its profile."""
    return voice_prefix(member_id, voice_id) + f"styles/{_checked(style_id, 'style id')}/"


def finetune_prefix(member_id: str, voice_id: str) -> str:
    return voice_prefix(member_id, voice_id) + "finetune/"
