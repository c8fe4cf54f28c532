"""Answer bodies of ``/v1/household`` (the admin page)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from shared.schemas import MemberOut


class Quotas(BaseModel):
    queued_jobs: int = Field(description="Jobs a member may have queued or running at once")
    chars_per_day: int = Field(description="Characters a member may synthesise in 24 hours")
    storage_bytes: int = Field(description="Bytes of voices and results a member may keep")


class MemberUsageOut(MemberOut):
    active_jobs: int
    chars_today: int = Field(description="Characters synthesised in the last 24 hours")
    storage_bytes: int
    voices: int


class HouseholdOut(BaseModel):
    mode: Literal["embedded", "server"]
    quotas: Quotas
    members: list[MemberUsageOut]
    flower_url: str | None = Field(description="The Celery dashboard, when ECHODIARY_FLOWER_PUBLIC_URL is set")


class InviteOut(BaseModel):
    member_id: str
    invite_link: str = Field(description="Opens the page signed in as the member; works once")
    expires_at: datetime
