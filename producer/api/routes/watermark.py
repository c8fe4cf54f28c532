"""Was this file made here? Answers about the caller's own jobs only."""

from __future__ import annotations

from fastapi import APIRouter, File, HTTPException, UploadFile

from producer.api.deps import BackendDep, CurrentMember, FormFields, reject_unknown_fields
from shared.schemas import WatermarkReport
from worker import watermark

router = APIRouter(prefix="/v1/watermark", tags=["watermark"])


@router.post("/detect", response_model=WatermarkReport,
             summary="Look for this server's watermark in an audio file you found")
def detect(sent: FormFields, member: CurrentMember, backend: BackendDep,
           audio: UploadFile = File(..., description="Any audio file (WAV, FLAC, OGG, MP3)")) -> WatermarkReport:
    reject_unknown_fields(sent, {"audio"})
    data = audio.file.read(backend.settings.max_upload_bytes + 1)
    if len(data) > backend.settings.max_upload_bytes:
        raise HTTPException(413, f"the file is larger than the limit of {backend.settings.max_upload_bytes} bytes")
    return watermark.report(backend, member, data)
