"""The household, for its admins: members with their use of each quota, and new invite links."""

from __future__ import annotations

from fastapi import APIRouter

from producer.api.deps import AdminMember, BackendDep
from shared import household, service
from shared.household_schemas import HouseholdOut, InviteOut, MemberUsageOut, Quotas
from shared.schemas import timestamp

router = APIRouter(prefix="/v1/household", tags=["household"])


@router.get("", response_model=HouseholdOut, summary="Members, their use of the quotas, the quotas (admin)")
def get_household(_admin: AdminMember, backend: BackendDep) -> HouseholdOut:
    s = backend.settings
    members = [MemberUsageOut(**service.member_view(u.member).model_dump(), active_jobs=u.active_jobs,
                              chars_today=u.chars_today, storage_bytes=u.storage_bytes, voices=u.voices)
               for u in household.usage(backend)]
    return HouseholdOut(mode="embedded" if s.embedded else "server", members=members,
                        quotas=Quotas(queued_jobs=s.quota_queued_jobs, chars_per_day=s.quota_chars_per_day,
                                      storage_bytes=s.quota_storage_bytes),
                        flower_url=s.flower_public_url)


@router.post("/members/{member_id}/invites", status_code=201, response_model=InviteOut,
             summary="A new one-time browser invite link for a member (admin)")
def create_invite(member_id: str, _admin: AdminMember, backend: BackendDep) -> InviteOut:
    link, expires = household.invite(backend, member_id)
    return InviteOut(member_id=member_id, invite_link=link, expires_at=timestamp(expires))
