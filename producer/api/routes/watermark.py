"""Was this file made here? Answers about the caller's own jobs only."""

from __future__ import annotations

from fastapi import APIRouter, File, HTTPException, UploadFile

from producer.api.deps import BackendDep, CurrentMember, FormFields, reject_unknown_fields
from shared import service
from shared.schemas import WatermarkReport, timestamp
from shared.service import Backend

router = APIRouter(prefix="/v1/watermark", tags=["watermark"])


@router.post("/detect", response_model=WatermarkReport,
             summary="Look for this server's watermark in an audio file you found")
def detect(sent: FormFields, member: CurrentMember, backend: BackendDep,
           audio: UploadFile = File(..., description="Any audio file (WAV, FLAC, OGG, MP3)")) -> WatermarkReport:
    reject_unknown_fields(sent, {"audio"})
    data = audio.file.read(backend.settings.max_upload_bytes + 1)
    if len(data) > backend.settings.max_upload_bytes:
        raise HTTPException(413, f"the file is larger than the limit of {backend.settings.max_upload_bytes} bytes")
    return report(backend, member, data)


def report(backend: Backend, member, data: bytes) -> WatermarkReport:  # noqa: ANN001
    """Detect the mark and name the job only when it is the member's own."""
    from worker import pipeline

    try:
        found = pipeline.detect(backend.settings, data)
    except ImportError as exc:
        raise HTTPException(503, "watermark detection is not available in this build") from exc
    except Exception as exc:
        raise HTTPException(415, "the file is not audio we can read; send WAV, FLAC, OGG or MP3") from exc
    job = service.find_job_by_mark(backend, member, found.mark) if found.mark is not None else None
    return WatermarkReport(present=found.present, mac_ok=found.mac_ok, z=found.z,
                           false_positive_bound=found.false_positive_bound, mine=job is not None,
                           job_id=job.id if job else None, voice_id=job.voice_id if job else None,
                           created_at=timestamp(job.created_at) if job else None)
