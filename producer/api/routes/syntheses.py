"""Syntheses: a diary entry in, a job id out."""

from __future__ import annotations

from fastapi import APIRouter, Header, Response

from producer.api.deps import BackendDep, CurrentMember
from shared import service
from shared.schemas import JobAccepted, SynthesisRequest

router = APIRouter(prefix="/v1/syntheses", tags=["syntheses"])


@router.post("", status_code=202, response_model=JobAccepted,
             summary="Queue a diary entry for synthesis in one of your voices")
def create_synthesis(body: SynthesisRequest, response: Response, member: CurrentMember, backend: BackendDep,
                     idempotency_key: str | None = Header(
                         None, description="Send the same key again to get the same job instead of a new one")
                     ) -> JobAccepted:
    job, replayed = service.create_synthesis(backend, member, body, idempotency_key)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return JobAccepted(job_id=job.id, kind=job.kind, status=job.status)
