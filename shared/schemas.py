"""Request and response bodies of the HTTP API (and of the Python client that mirrors it).

Requests forbid unknown fields: a misspelt parameter is an error the member sees, not a setting
silently ignored. Synthesis parameters carry upstream api_v2's names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from contracts import (
    ENROLLMENT_STYLE,
    FORMATS,
    PARAM_NAMES,
    SPLIT_METHODS,
    TEXT_LANGS,
    VOICE_LANGS,
    Format,
    JobKind,
    JobStatus,
    MatmulMode,
    StyleName,
    SynthesisParams,
    TextLang,
    optional_overrides,
)

__all__ = ["FORMATS", "PARAM_NAMES", "SPLIT_METHODS", "TEXT_LANGS", "VOICE_LANGS", "Format", "TextLang"]  # re-exported


def timestamp(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemberCreate(Request):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    admin: bool = False


class MemberOut(BaseModel):
    member_id: str
    name: str
    admin: bool
    created_at: datetime


class MemberRemoved(BaseModel):
    rows: int = Field(description="Database rows deleted with the member.")
    objects: int = Field(description="Stored objects deleted with the member.")


class MemberCreated(MemberOut):
    token: str = Field(description="The member's API token. Shown once: it is stored only as a hash.")


class _SynthesisBody(Request):
    text: str = Field(min_length=1, description="The diary entry to read out.")
    voice_id: str = Field(min_length=1, max_length=64)
    text_lang: TextLang = SynthesisParams.model_fields["text_lang"].default
    format: Format = "wav"
    style: StyleName | None = Field(
        None, description=f"The voice's style (persona) to read in: one of its styles (GET /v1/voices/{{id}}/styles), "
                          f"or {ENROLLMENT_STYLE!r} for its enrollment reference. Default: the voice's default style.")


# The synthesis parameters follow, each an optional override with the engine's own bounds (the
# engine's defaults apply to every parameter a request leaves out): one definition, in contracts.
SynthesisRequest = create_model("SynthesisRequest", __base__=_SynthesisBody, __module__=__name__,
                                **optional_overrides(PARAM_NAMES))


class FinetuneRequest(Request):
    sovits_epochs: int = Field(8, ge=1, le=50)
    gpt_epochs: int = Field(15, ge=1, le=50)


class JobAccepted(BaseModel):
    job_id: str
    kind: str
    status: str


class VoiceCreated(JobAccepted):
    voice_id: str


class VoiceOut(BaseModel):
    voice_id: str
    name: str
    language: str
    transcript: str
    status: Literal["enrolling", "ready", "failed"]
    error: str | None
    finetuned: bool
    created_at: datetime
    default_style: str = Field(ENROLLMENT_STYLE, description="The style a synthesis without `style` reads in")
    styles: list[str] | None = Field(None, description="Its ready styles, the enrollment reference first "
                                                       "(in the details of one voice)")
    clean_speech_minutes: float | None = Field(
        None, description="Minutes of clean speech collected by guided enrollment and added takes (null for a "
                          "one-clip voice)")
    dataset_clips: int | None = Field(None, description="Clips in its fine-tuning dataset")
    finetune_min_minutes: float | None = Field(
        None, description="Minutes of clean speech fine-tuning needs (the server's ECHODIARY_FINETUNE_MIN_MINUTES)")
    finetune_ready: bool | None = Field(None, description="Whether it has collected enough to be fine-tuned")
    finetune_note: str | None = Field(None, description="What fine-tuning needs and what this voice has")


class VoiceDeleteRequested(BaseModel):
    voice_id: str
    confirm: str = Field(description="Send DELETE again with ?confirm=<this> to delete for good.")
    expires_at: datetime
    jobs: int = Field(description="Jobs made from this voice that will be deleted with it.")


class VoiceDeleted(BaseModel):
    voice_id: str
    deleted: bool
    jobs_deleted: int
    objects_deleted: int


class Progress(BaseModel):
    done: int
    total: int
    reused: int = Field(0, description="Of a finished synthesis: chunks taken from earlier renders of the same "
                                       "sentences instead of synthesised again (total - reused were rendered).")


class Result(BaseModel):
    url: str = Field(description="A download link that stops working at expires_at.")
    expires_at: datetime
    duration_s: float | None
    format: str
    bytes: int


class JobOut(BaseModel):
    job_id: str
    kind: JobKind
    status: JobStatus
    voice_id: str | None
    lane: str
    progress: Progress
    queue_position: int | None
    error: str | None
    cancel_requested: bool
    result: Result | None
    result_expired: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobPage(BaseModel):
    items: list[JobOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class WorkerReadiness(BaseModel):
    name: str = Field(description="Celery node name and pool process id.")
    state: Literal["loading", "ready", "failed"]
    models: str
    device: str
    since: float = Field(description="Unix time the process entered this state.")
    warm_up_s: float | None = Field(None, description="Seconds the warm-up took.")
    voices_warmed: int | None = Field(None, description="Recently used voice profiles preloaded at start.")
    matmul: MatmulMode | None = Field(
        None, description="The linear kernels (GPT, BERT) this process chose at start (ECHODIARY_MATMUL).")
    error: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    mode: Literal["embedded", "server"]
    database: bool
    storage: bool
    broker: bool | None
    chinese_reader: Literal["g2pw", "pypinyin"] = Field(
        "pypinyin", description="How Chinese polyphones are read: g2pW when its folder (ECHODIARY_G2PW_DIR, "
        "default <models>/G2PWModel) is there as seen from this server, else pypinyin.")
    workers: list[WorkerReadiness] | None = Field(
        None, description="Server mode: every live worker process and whether its models are loaded and warm.")


class WatermarkReport(BaseModel):
    present: bool = Field(description="A mark made with this server's key was found.")
    mac_ok: bool
    z: float | None = None
    false_positive_bound: float | None = None
    mine: bool = Field(description="The mark names one of your own jobs.")
    job_id: str | None = Field(None, description="Your job the file came from (never another member's).")
    voice_id: str | None = None
    created_at: datetime | None = None
