"""Diary entries: write, list by day, read, edit, delete. Another member's entry answers 404."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Response

from producer.api.deps import BackendDep, CurrentMember
from shared import entries
from shared.entry_schemas import EntryCreate, EntryOut, EntryPage, EntryPatch

router = APIRouter(prefix="/v1/entries", tags=["entries"])


@router.post("", status_code=201, response_model=EntryOut, summary="Write a diary entry")
def create_entry(body: EntryCreate, member: CurrentMember, backend: BackendDep) -> EntryOut:
    return entries.create_entry(backend, member, body)


@router.get("", response_model=EntryPage, summary="Your entries, newest day first, optionally within dates")
def list_entries(member: CurrentMember, backend: BackendDep,
                 since: Annotated[date | None, Query(description="First day (inclusive)")] = None,
                 until: Annotated[date | None, Query(description="Last day (inclusive)")] = None,
                 limit: Annotated[int, Query(ge=1, le=200)] = 50,
                 offset: Annotated[int, Query(ge=0)] = 0) -> EntryPage:
    return entries.list_entries(backend, member, since, until, limit, offset)


@router.get("/{entry_id}", response_model=EntryOut, summary="One entry")
def get_entry(entry_id: str, member: CurrentMember, backend: BackendDep) -> EntryOut:
    return entries.get_entry(backend, member, entry_id)


@router.patch("/{entry_id}", response_model=EntryOut, summary="Edit an entry (only the fields sent change)")
def update_entry(entry_id: str, body: EntryPatch, member: CurrentMember, backend: BackendDep) -> EntryOut:
    return entries.update_entry(backend, member, entry_id, body)


@router.delete("/{entry_id}", status_code=204, summary="Delete an entry")
def delete_entry(entry_id: str, member: CurrentMember, backend: BackendDep) -> Response:
    entries.delete_entry(backend, member, entry_id)
    return Response(status_code=204)
