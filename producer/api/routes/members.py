"""Household members: an admin creates, revokes and removes them; anyone asks who they are.

The household overview with every member's use of the quotas, and invite links, is /v1/household."""

from __future__ import annotations

from fastapi import APIRouter

from producer.api.deps import AdminMember, BackendDep, CurrentMember
from shared import keys, members, service
from shared.schemas import (
    MemberCreate,
    MemberCreated,
    MemberOut,
    MemberRemoved,
)
from shared.tables import Member

router = APIRouter(prefix="/v1/members", tags=["members"])


member_out = service.member_view  # the one definition lives beside the job view


@router.post("", status_code=201, response_model=MemberCreated,
             summary="Create a member (admin); the answer holds their token, shown this once")
def create_member(body: MemberCreate, _admin: AdminMember, backend: BackendDep) -> MemberCreated:
    member, token = service.create_member(backend, body.name, body.admin)
    return MemberCreated(**member_out(member).model_dump(), token=token)


@router.get("/me", response_model=MemberOut, summary="The member this token belongs to")
def me(member: CurrentMember) -> MemberOut:
    return member_out(member)


def _member(backend: BackendDep, member_id: str) -> Member:
    if not keys.is_id(member_id):
        raise service.NotFoundError(f"no member {member_id!r}")
    return members.find_member(backend, member_id)


@router.post("/{member_id}/revoke", response_model=MemberCreated,
             summary="Revoke a member's tokens and browser sessions; the answer holds their new token (admin)")
def revoke(member_id: str, admin: AdminMember, backend: BackendDep) -> MemberCreated:
    member = _member(backend, member_id)
    if member.id == admin.id:
        raise service.Conflict("revoking your own access would sign you out for good; use `echodiary members revoke`")
    token = members.revoke_access(backend, member.id)
    return MemberCreated(**member_out(member).model_dump(), token=token or "")


@router.delete("/{member_id}", response_model=MemberRemoved,
               summary="Remove a member with all their voices, entries, jobs and audio (admin; cannot be undone)")
def remove(member_id: str, admin: AdminMember, backend: BackendDep) -> MemberRemoved:
    removed = members.remove_member(backend, _member(backend, member_id).id, acting_member_id=admin.id)
    return MemberRemoved(rows=removed.rows, objects=removed.objects)
