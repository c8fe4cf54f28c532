"""Request and response bodies of the guided enrollment API (``/v1/enrollments``, issue #13)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from contracts import StyleName
from shared.schemas import Request


class EnrollmentCreate(Request):
    script_id: str = Field(min_length=1, max_length=32, description="A reading script (`GET /v1/enrollments/scripts`)")
    voice_name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$",
                            description="The name the new voice will have")
    language: Literal["zh", "en"] | None = Field(
        None, description="Language of the messages and of the consent statement (default: the script's)")
    accept_notice: bool = Field(
        description="True once the member has read and accepted `notice` (GET /v1/enrollments/notice): "
                    "only their own voice may be enrolled, and every output is watermarked and labelled")
    voice_id: str | None = Field(
        None, min_length=32, max_length=32,
        description="More samples for this ready voice of yours: the session's takes are checked against its "
                    "enrolled speaker and their clips join its fine-tuning dataset (no new consent; "
                    "`voice_name` is ignored)")


class ScriptOut(BaseModel):
    script_id: str
    language: str = Field(description="The script's phonemizer language (zh for Chinese and mixed scripts)")
    message_language: str = Field(description="The language of gate messages and the consent statement")
    title: str
    sentences: list[str] = Field(description="Read one per take; takes are numbered from 1")


class NoticeOut(BaseModel):
    language: str
    notice: str = Field(description="What the member accepts before a session starts (recorded with it)")


class ThresholdsOut(BaseModel):
    """The quality gates' thresholds per take kind, the same the server applies to an upload."""

    sentence: dict[str, Any]
    whole_script: dict[str, Any]
    consent: dict[str, Any]


class StatementOut(BaseModel):
    language: str
    statement: str = Field(description="The consent statement to read aloud, naming you and today's date")


class ClipOut(BaseModel):
    sentence: int = Field(description="Script sentence, numbered from 1")
    seconds: float
    start: float = Field(description="Where the clip starts in its take, in seconds")
    end: float
    snr_db: float | None


class TakeOut(BaseModel):
    take_id: str
    sentence: int | None = Field(description="Script sentence numbered from 1; null for the whole-script take "
                                             "and the consent recording")
    kind: Literal["sentence", "whole_script", "consent"]
    status: Literal["pending", "accepted", "refused"]
    seconds: float
    messages: list[str] = Field(description="What to fix, in the session's language (empty when accepted)")
    report: dict[str, Any] | None = Field(
        description="The quality analysis: gates (value, threshold, passed), measurements, thresholds")
    clips: list[ClipOut] = Field(description="The 3-10 s clips cut from the take, one per sentence")
    rejected: list[dict[str, Any]] = Field(description="Sentences whose clip fell outside 3-10 s, and why")
    created_at: datetime


class EnrollmentOut(BaseModel):
    enrollment_id: str
    status: Literal["open", "finishing", "done", "expired"]
    script_id: str
    language: str
    voice_name: str
    statement: str = Field(description="The consent statement to read aloud and upload with PUT .../consent")
    notice: str
    notice_accepted_at: datetime
    takes: list[TakeOut] = Field(description="Current takes: the latest per sentence, and the consent")
    missing_sentences: list[int] = Field(description="Sentences (from 1) with no accepted clip yet")
    consent_recorded: bool
    can_finish: bool
    voice_id: str | None
    extends_voice: bool = Field(False, description="True: the takes add samples to the ready voice `voice_id`")
    job_id: str | None = Field(description="The finishing job, once started")
    error: str | None = Field(description="Why the last finish failed (re-record and finish again)")
    created_at: datetime
    expires_at: datetime = Field(description="An open session unused until then is deleted with its audio")


class TakeRefusedOut(BaseModel):
    """422: a quality gate refused the take (messages and report), or the request itself is invalid
    (detail alone)."""

    detail: str
    messages: list[str] = Field([], description="What to fix, one message per failed gate")
    report: dict[str, Any] | None = Field(None, description="The quality analysis that refused the take")


class ConsentOut(BaseModel):
    voice_id: str
    consent: Literal["verified", "legacy", "missing"] = Field(
        description="verified: recorded and matched to the enrolled speaker; legacy: a one-clip voice made "
                    "before consent existed (usable only where the server allows it); missing: unusable")
    usable: bool
    statement: str | None
    score: float | None = Field(description="Cosine similarity of the consent recording and the takes")
    threshold: float | None
    model: str | None = Field(description="The speaker-verification model that scored it")
    one_speaker: dict[str, Any] | None = Field(description="The check that every take is the same speaker")
    clean_seconds: float | None = Field(description="Seconds of clean speech collected")
    dataset_clips: int | None = Field(description="Clips in the fine-tuning dataset")
    holdout: dict[str, Any] | None = Field(
        description="A/B: the held-out script sentence (not the reference, not trained on), and the speaker "
                    "similarity of the member's recording of it and its synthesis in this voice")
    ab_recording_url: str | None = Field(None, description="The member's own recording of it (a link that expires)")
    ab_synthesis_url: str | None = Field(None, description="The same sentence in the new voice (a link that expires)")
    created_at: datetime | None


# --- styles (personas) ---------------------------------------------------------------------------

class StyleOut(BaseModel):
    name: str = Field(description="The style's name; `enrollment` is the voice's own enrollment reference")
    status: Literal["pending", "ready"] = Field(description="pending: its job is still checking it")
    default: bool = Field(description="Syntheses that name no style read in this one")
    transcript: str | None = Field(description="What its reference recording says")
    seconds: float | None = Field(description="Length of its reference recording")
    score: float | None = Field(description="Speaker similarity of its recording to the voice's enrollment")
    threshold: float | None = Field(description="The same-speaker threshold that score had to reach")
    model: str | None = Field(description="The speaker-verification model that scored it")
    job_id: str | None = Field(description="The job that checked and enrolled it")
    created_at: datetime | None = Field(description="When it was added (null for the enrollment reference)")


class StyleDefault(Request):
    name: StyleName = Field(description="A ready style of the voice, or `enrollment` for its enrollment reference")


class StyleDeleted(BaseModel):
    voice_id: str = Field(description="The voice the style belonged to")
    name: str = Field(description="The deleted style")
    objects_deleted: int = Field(description="Stored objects removed with it (its reference and profile)")
