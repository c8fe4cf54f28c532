"""Request and response bodies of the HTTP API (and of the Python client that mirrors it).

Requests forbid unknown fields: a misspelt parameter is an error the member sees, not a setting
silently ignored. Synthesis parameters carry upstream api_v2's names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TEXT_LANGS = ("zh", "all_zh", "en", "auto")
VOICE_LANGS = ("zh", "all_zh", "en")
FORMATS = ("wav", "flac", "ogg", "mp3")
SPLIT_METHODS = ("cut0", "cut1", "cut2", "cut3", "cut4", "cut5")

TextLang = Literal["zh", "all_zh", "en", "auto"]
Format = Literal["wav", "flac", "ogg", "mp3"]

# The engine's own defaults apply to every parameter a request leaves out.
PARAM_NAMES = ("top_k", "top_p", "temperature", "repetition_penalty", "text_split_method", "batch_size",
               "speed_factor", "fragment_interval", "seed", "noise_scale")


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


class MemberCreated(MemberOut):
    token: str = Field(description="The member's API token. Shown once: it is stored only as a hash.")


class SynthesisRequest(Request):
    text: str = Field(min_length=1, description="The diary entry to read out.")
    voice_id: str = Field(min_length=1, max_length=64)
    text_lang: TextLang = "zh"
    format: Format = "wav"
    top_k: int | None = Field(None, ge=1, le=100)
    top_p: float | None = Field(None, gt=0, le=1)
    temperature: float | None = Field(None, gt=0, le=2)
    repetition_penalty: float | None = Field(None, ge=1, le=2)
    text_split_method: Literal["cut0", "cut1", "cut2", "cut3", "cut4", "cut5"] | None = None
    batch_size: int | None = Field(None, ge=1, le=64)
    speed_factor: float | None = Field(None, ge=0.5, le=2)
    fragment_interval: float | None = Field(None, ge=0, le=3)
    seed: int | None = Field(None, ge=-1, le=2**32 - 1)
    noise_scale: float | None = Field(None, ge=0, le=1)


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


class Result(BaseModel):
    url: str = Field(description="A download link that stops working at expires_at.")
    expires_at: datetime
    duration_s: float | None
    format: str
    bytes: int


class JobOut(BaseModel):
    job_id: str
    kind: Literal["enroll", "synthesis", "finetune"]
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
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


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    mode: Literal["embedded", "server"]
    database: bool
    storage: bool
    broker: bool | None
    chinese_reader: Literal["g2pw", "pypinyin"] = Field(
        "pypinyin", description="How Chinese polyphones are read: g2pW when its folder (ECHODIARY_G2PW_DIR, "
        "default <models>/G2PWModel) is there as seen from this server, else pypinyin.")


class WatermarkReport(BaseModel):
    present: bool = Field(description="A mark made with this server's key was found.")
    mac_ok: bool
    z: float | None = None
    false_positive_bound: float | None = None
    mine: bool = Field(description="The mark names one of your own jobs.")
    job_id: str | None = Field(None, description="Your job the file came from (never another member's).")
    voice_id: str | None = None
    created_at: datetime | None = None
