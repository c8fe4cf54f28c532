"""Household members (an admin creates them) and who am I."""

from __future__ import annotations

from fastapi import APIRouter

from producer.api.deps import AdminMember, BackendDep, CurrentMember
from shared import service
from shared.schemas import MemberCreate, MemberCreated, MemberOut

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
