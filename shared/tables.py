"""The database tables: household members, their API tokens, voices, jobs and the chunks of a job.

Times are UNIX seconds (floats) so that lease comparisons are plain numbers on SQLite and
PostgreSQL alike. Diary text lives here (and only here): the broker and Flower see job ids.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from contracts import (
    ACTIVE,
    BACKGROUND,
    CANCELLED,
    ENROLL,
    FAILED,
    FINETUNE,
    FINISHED,
    INTERACTIVE,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    SYNTHESIS,
)
from shared.keys import new_id

# Job kinds, statuses and lanes come from contracts (the life cycle is described there) and are
# re-exported here for the SQL layer; the columns below hold exactly those strings. running -> queued
# happens only when a worker vanished (its lease ran out) or let go after a transient error;
# failed | cancelled -> queued only when the member retries the job.
__all__ = [
    "ACTIVE", "BACKGROUND", "CANCELLED", "DELETING", "ENROLL", "ENROLLING", "FAILED", "FINETUNE", "FINISHED",
    "INTERACTIVE", "QUEUED", "READY", "RUNNING", "SUCCEEDED", "SYNTHESIS", "VOICE_FAILED",
    "ApiToken", "Job", "JobChunk", "Member", "Voice", "now",
]  # fmt: skip

# Voice statuses.
ENROLLING, READY, VOICE_FAILED, DELETING = "enrolling", "ready", "failed", "deleting"


def now() -> float:
    return time.time()


class Member(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    name: str = Field(index=True, unique=True, max_length=100)
    is_admin: bool = False
    created_at: float = Field(default_factory=now)
    # Bumped at the start of every dispatch decision for this member: the row lock (PostgreSQL)
    # or the database write lock (SQLite) makes those decisions one at a time.
    dispatch_seq: int = 0


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    member_id: str = Field(foreign_key="member.id", index=True, max_length=32)
    token_hash: str = Field(unique=True, max_length=64)  # sha256 hex of the token; the token itself is never stored
    created_at: float = Field(default_factory=now)
    revoked: bool = False


class Voice(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    member_id: str = Field(foreign_key="member.id", index=True, max_length=32)
    name: str = Field(max_length=100)
    language: str = Field(max_length=16)
    transcript: str
    status: str = Field(default=ENROLLING, max_length=16)
    error: str | None = None
    reference_key: str | None = None
    reference_bytes: int = 0
    profile_key: str | None = None
    profile_bytes: int = 0
    finetune_key: str | None = None
    finetune_bytes: int = 0
    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)
    delete_token_hash: str | None = Field(default=None, max_length=64)
    delete_token_expires: float | None = None


class Job(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("member_id", "idempotency_key", name="uq_job_member_idempotency"),
        Index("ix_job_dispatch", "status", "lane", "member_id", "created_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    member_id: str = Field(foreign_key="member.id", index=True, max_length=32)
    voice_id: str | None = Field(default=None, index=True, max_length=32)
    kind: str = Field(max_length=16)
    status: str = Field(default=QUEUED, index=True, max_length=16)
    lane: str = Field(default=INTERACTIVE, max_length=16)
    queue: str = Field(default="gpu", max_length=16)
    priority: int = 0  # broker priority: 0 is served first by the Redis transport

    text: str | None = None
    chars: int = 0
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    format: str = Field(default="wav", max_length=8)
    idempotency_key: str | None = Field(default=None, max_length=200)
    request_hash: str | None = Field(default=None, max_length=64)
    mark: int | None = Field(default=None, sa_column=Column(BigInteger, unique=True, nullable=True))

    created_at: float = Field(default_factory=now)
    dispatched_at: float | None = None
    redispatch_at: float | None = None  # when to publish again if still unclaimed (None: dispatched_at + delay)
    started_at: float | None = None
    finished_at: float | None = None

    # Ownership of a running job: the attempt number is the claim; the lease is renewed by a
    # heartbeat and, once it runs out, lets another worker take the job over.
    attempt: int = 0
    worker: str | None = Field(default=None, max_length=200)
    lease_until: float | None = None
    cancel_requested: bool = False
    # Attempts whose worker stopped (killed, out of memory) without an outcome; see job_max_attempts.
    stopped_attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})

    progress_done: int = 0
    progress_total: int = 0
    # Chunks of a synthesis taken from the chunk cache instead of synthesised (a re-render after an edit).
    chunks_reused: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # After how many tokens the first chunk started early (the engine's clock chose it): a takeover
    # replays it, so that every attempt streams the same bytes.
    early_tokens: int | None = None
    error: str | None = None

    result_key: str | None = None
    result_bytes: int = 0
    duration_s: float | None = None
    expires_at: float | None = None


class JobChunk(SQLModel, table=True):
    __tablename__ = "job_chunk"

    job_id: str = Field(foreign_key="job.id", primary_key=True, max_length=32)
    index: int = Field(primary_key=True)
    attempt: int = 0
    finished_at: float = Field(default_factory=now)


# --- guided enrollment (issue #13) -------------------------------------------------------------

# Enrollment session statuses: open (takes being recorded) -> finishing (the job runs) -> done;
# a failed finish goes back to open with its error; an abandoned open session ends expired.
SESSION_OPEN, SESSION_FINISHING, SESSION_DONE, SESSION_EXPIRED = "open", "finishing", "done", "expired"
# Take statuses: pending (a worker analyses it) -> accepted | refused (audio deleted, report kept).
TAKE_PENDING, TAKE_ACCEPTED, TAKE_REFUSED = "pending", "accepted", "refused"
# EnrollmentTake.sentence: 0-based script sentence, or one of these.
WHOLE_SCRIPT, CONSENT_TAKE = -1, -2


class EnrollmentSession(SQLModel, table=True):
    __tablename__ = "enrollment_session"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    member_id: str = Field(foreign_key="member.id", index=True, max_length=32)
    script_id: str = Field(max_length=32)
    language: str = Field(max_length=8)  # the messages' and the consent statement's language
    voice_language: str = Field(max_length=16)
    sentences: int
    voice_name: str = Field(max_length=100)
    statement: str  # the consent statement the member reads (names them and the day)
    notice: str  # the notice the member accepted, word for word
    notice_accepted_at: float
    status: str = Field(default=SESSION_OPEN, index=True, max_length=16)
    voice_id: str | None = Field(default=None, index=True, max_length=32)
    # True: more samples for the ready voice ``voice_id`` (its clips join that voice's dataset).
    extends_voice: bool = Field(default=False, sa_column_kwargs={"server_default": "false"})
    job_id: str | None = Field(default=None, max_length=32)
    error: str | None = None
    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)
    expires_at: float = 0.0


class EnrollmentTake(SQLModel, table=True):
    """One upload of a session. A sentence keeps only its latest accepted take (older ones are deleted
    when a new one is accepted), so a re-record replaces without losing the good take meanwhile."""

    __tablename__ = "enrollment_take"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    session_id: str = Field(foreign_key="enrollment_session.id", index=True, max_length=32)
    sentence: int
    status: str = Field(default=TAKE_PENDING, max_length=16)
    audio_key: str | None = None
    audio_bytes: int = 0
    job_id: str | None = Field(default=None, max_length=32)
    report: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    clips: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    rejected: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    seconds: float = 0.0
    created_at: float = Field(default_factory=now)


class VoiceConsent(SQLModel, table=True):
    """The recorded consent of an enrolled voice and the speaker checks that accepted it."""

    __tablename__ = "voice_consent"

    voice_id: str = Field(primary_key=True, max_length=32)
    member_id: str = Field(foreign_key="member.id", index=True, max_length=32)
    session_id: str | None = Field(default=None, max_length=32)
    passed: bool = False
    statement: str
    score: float
    threshold: float
    model: str = Field(max_length=64)
    consent_key: str
    one_speaker: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    clean_seconds: float = 0.0
    dataset_clips: int = 0
    dataset_key: str | None = None
    holdout: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: float = Field(default_factory=now)


# Style statuses: pending (its job checks and enrolls it) -> ready; a refused style is deleted.
STYLE_PENDING, STYLE_READY = "pending", "ready"


class VoiceStyle(SQLModel, table=True):
    """A named style (persona) of a voice: its own short reference, read by the voice's verified speaker."""

    __tablename__ = "voice_style"
    __table_args__ = (UniqueConstraint("voice_id", "name", name="uq_voice_style_name"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    voice_id: str = Field(index=True, max_length=32)
    member_id: str = Field(foreign_key="member.id", index=True, max_length=32)
    name: str = Field(max_length=32)
    transcript: str
    status: str = Field(default=STYLE_PENDING, max_length=16)
    is_default: bool = False
    reference_key: str
    reference_bytes: int = 0
    profile_key: str | None = None
    profile_bytes: int = 0
    seconds: float = 0.0
    score: float | None = None  # speaker similarity to the voice's enrollment
    threshold: float | None = None
    model: str | None = Field(default=None, max_length=64)
    job_id: str | None = Field(default=None, max_length=32)
    created_at: float = Field(default_factory=now)


# --- diary entries (issue #16) -----------------------------------------------------------------


class DiaryEntry(SQLModel, table=True):
    """One diary entry of a member; ``last_job_id`` is the latest synthesis made from it."""

    __tablename__ = "diary_entry"
    __table_args__ = (Index("ix_diary_entry_member_date", "member_id", "entry_date"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    member_id: str = Field(foreign_key="member.id", max_length=32)
    title: str | None = Field(default=None, max_length=200)
    text: str
    language: str = Field(max_length=16)
    voice_id: str | None = Field(default=None, max_length=32)
    entry_date: str = Field(max_length=10)  # ISO date, YYYY-MM-DD: sorts as text on both databases
    last_job_id: str | None = Field(default=None, max_length=32)
    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)


# --- web sign-in (issue #16) -------------------------------------------------------------------


class WebSession(SQLModel, table=True):
    """A browser's sign-in: the cookie holds a random id, only its hash is kept."""

    __tablename__ = "web_session"

    id_hash: str = Field(primary_key=True, max_length=64)
    member_id: str = Field(foreign_key="member.id", index=True, max_length=32)
    csrf_token: str = Field(max_length=64)  # double-submit: the page echoes it in X-CSRF-Token
    created_at: float = Field(default_factory=now)
    expires_at: float


class MemberInvite(SQLModel, table=True):
    """A one-time sign-in code for a member's first browser (hashed; used once; expires)."""

    __tablename__ = "member_invite"

    code_hash: str = Field(primary_key=True, max_length=64)
    member_id: str = Field(foreign_key="member.id", index=True, max_length=32)
    created_at: float = Field(default_factory=now)
    expires_at: float
    used_at: float | None = None
