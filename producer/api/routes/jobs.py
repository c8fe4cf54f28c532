"""Jobs: read one (status, progress, queue position, result link), list them, cancel or retry one."""

from __future__ import annotations

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from contracts import JobKind, JobStatus
from producer.api.audio_stream import EVENT_STREAM, audio_response, wants_events
from producer.api.deps import BackendDep, CurrentMember
from shared import listening, service
from shared.schemas import JobOut, JobPage

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
MAX_OFFSET = 1_000_000_000  # far past any household's history; keeps the SQL OFFSET in range


@router.get("", response_model=JobPage, summary="Your jobs, newest first")
def list_jobs(member: CurrentMember, backend: BackendDep,
              limit: int = Query(20, ge=1, le=100), offset: int = Query(0, ge=0, le=MAX_OFFSET),
              status: JobStatus | None = None,
              kind: JobKind | None = None) -> JobPage:
    items, total = service.list_jobs(backend, member, limit, offset, status, kind)
    next_offset = offset + len(items) if offset + len(items) < total else None
    return JobPage(items=items, total=total, limit=limit, offset=offset, next_offset=next_offset)


@router.get("/{job_id}", response_model=JobOut, summary="One job: status, progress and, when done, a link")
def get_job(job_id: str, member: CurrentMember, backend: BackendDep) -> JobOut:
    return service.get_job(backend, member, job_id)


@router.get("/{job_id}/audio", response_class=StreamingResponse,
            summary="A synthesis's audio as it renders (chunked), or as server-sent events",
            responses={200: {"content": {"audio/wav": {}, "audio/flac": {}, "audio/ogg": {}, "audio/mpeg": {},
                                         EVENT_STREAM: {}}}})
def job_audio(job_id: str, member: CurrentMember, backend: BackendDep,
              accept: str | None = Header(None)) -> StreamingResponse:
    """From the first piece whenever you join; once the job has finished, its stored file. With
    `Accept: text/event-stream`: `audio` events (base64 `audio`, `index`, `progress`), then `done`
    or `error`. Another member's job is 404, a failed, cancelled or expired one 409."""
    return audio_response(listening.open_audio(backend, member, job_id), wants_events(accept))


@router.post("/{job_id}/retry", status_code=202, response_model=JobOut,
             summary="Try a failed or cancelled job again, as a new attempt")
def retry_job(job_id: str, member: CurrentMember, backend: BackendDep) -> JobOut:
    return service.retry_job(backend, member, job_id)


@router.post("/{job_id}/cancel", status_code=202, response_model=JobOut,
             summary="Cancel a job: at once if queued, between chunks if running")
def cancel_job(job_id: str, member: CurrentMember, backend: BackendDep) -> JobOut:
    return service.cancel_job(backend, member, job_id)
