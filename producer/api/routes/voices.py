"""Voices: upload a reference recording (enrollment job), list, read, fine-tune, delete in two steps."""

from __future__ import annotations

from fastapi import APIRouter, Body, File, Form, Query, Response, UploadFile

from producer.api.deps import BackendDep, CurrentMember, FormFields, reject_unknown_fields
from shared import service
from shared.schemas import (
    FinetuneRequest,
    JobAccepted,
    VoiceCreated,
    VoiceDeleted,
    VoiceDeleteRequested,
    VoiceOut,
    timestamp,
)

router = APIRouter(prefix="/v1/voices", tags=["voices"])
UPLOAD_FIELDS = {"audio", "transcript", "language", "name"}


voice_out = service.voice_view  # the one definition lives beside the job view


@router.post("", status_code=202, response_model=VoiceCreated,
             summary="Upload a 3-10 s reference recording with its transcript; enrollment runs as a job")
def create_voice(response: Response, sent: FormFields, member: CurrentMember, backend: BackendDep,
                 audio: UploadFile = File(..., description="WAV, FLAC, OGG or MP3, 3 to 10 seconds"),
                 transcript: str = Form(..., description="What the recording says, word for word"),
                 language: str = Form("zh", description="zh, all_zh or en"),
                 name: str = Form(..., description="A name for this voice")) -> VoiceCreated:
    reject_unknown_fields(sent, UPLOAD_FIELDS)
    data = audio.file.read(backend.settings.max_upload_bytes + 1)
    voice, job = service.create_voice(backend, member, data, transcript, language, name)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return VoiceCreated(voice_id=voice.id, job_id=job.id, kind=job.kind, status=job.status)


@router.get("", response_model=list[VoiceOut], summary="Your voices")
def list_voices(member: CurrentMember, backend: BackendDep) -> list[VoiceOut]:
    return [voice_out(v) for v in service.list_voices(backend, member)]


@router.get("/{voice_id}", response_model=VoiceOut,
            summary="One of your voices, with its styles, the clean speech collected and what fine-tuning needs")
def get_voice(voice_id: str, member: CurrentMember, backend: BackendDep) -> VoiceOut:
    return service.voice_details(backend, member, voice_id)


@router.delete("/{voice_id}", response_model=VoiceDeleteRequested | VoiceDeleted,
               responses={202: {"model": VoiceDeleteRequested}, 200: {"model": VoiceDeleted}},
               summary="Delete a voice and everything made from it: first call for a token, then confirm")
def delete_voice(voice_id: str, response: Response, member: CurrentMember, backend: BackendDep,
                 confirm: str | None = Query(None, description="The token the first DELETE returned")
                 ) -> VoiceDeleteRequested | VoiceDeleted:
    if confirm is None:
        token, expires, n_jobs = service.request_voice_delete(backend, member, voice_id)
        response.status_code = 202
        return VoiceDeleteRequested(voice_id=voice_id, confirm=token, expires_at=timestamp(expires), jobs=n_jobs)
    n_jobs, n_objects = service.confirm_voice_delete(backend, member, voice_id, confirm)
    return VoiceDeleted(voice_id=voice_id, deleted=True, jobs_deleted=n_jobs, objects_deleted=n_objects)


@router.post("/{voice_id}/finetune", status_code=202, response_model=JobAccepted,
             summary="Fine-tune the models on this voice (a long background job); once it succeeds, "
                     "this voice's syntheses use its fine-tuned weights")
def finetune(voice_id: str, response: Response, member: CurrentMember, backend: BackendDep,
             body: FinetuneRequest | None = Body(None)) -> JobAccepted:
    job = service.start_finetune(backend, member, voice_id, body or FinetuneRequest())
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobAccepted(job_id=job.id, kind=job.kind, status=job.status)
