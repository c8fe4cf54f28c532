"""Request and answer bodies of ``/v1/entries`` (diary entries)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from shared.schemas import Request

TITLE_MAX_CHARS = 200


class EntryCreate(Request):
    title: str | None = Field(None, max_length=TITLE_MAX_CHARS)
    text: str = Field(min_length=1, description="The entry; at most the server's max_text_chars.")
    language: str = Field(min_length=1, max_length=16)
    voice_id: str | None = Field(None, min_length=1, max_length=64)
    entry_date: date = Field(description="The day the entry is about (YYYY-MM-DD).")


class EntryPatch(Request):
    """Only the fields sent change; send ``null`` to clear ``title`` or ``voice_id``."""

    title: str | None = Field(None, max_length=TITLE_MAX_CHARS)
    text: str | None = Field(None, min_length=1)
    language: str | None = Field(None, min_length=1, max_length=16)
    voice_id: str | None = Field(None, min_length=1, max_length=64)
    entry_date: date | None = None
    last_job_id: str | None = Field(None, min_length=1, max_length=64,
                                    description="The synthesis job last made from this entry.")


class EntryOut(BaseModel):
    id: str
    title: str | None
    text: str
    language: str
    voice_id: str | None
    entry_date: date
    last_job_id: str | None
    created_at: datetime
    updated_at: datetime


class EntryPage(BaseModel):
    entries: list[EntryOut]
    next_offset: int | None = Field(description="Pass as ?offset= for the next page; null at the end.")
