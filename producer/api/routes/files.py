"""Downloads from the local storage folder (embedded mode), behind signed links that expire."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from contracts import FORMATS
from producer.api.deps import BackendDep
from shared.storage import CONTENT_TYPES, LocalStorage, NotFound

router = APIRouter(tags=["files"])


@router.get("/v1/files/{key:path}", summary="A stored file, through a link from GET /v1/jobs/{id}")
def download(key: str, backend: BackendDep, expires: int = Query(...), sig: str = Query(...),
             filename: str | None = None) -> Response:
    storage = backend.storage
    if not isinstance(storage, LocalStorage):
        raise HTTPException(404, "files are served by the S3 storage, not by this API")
    if not storage.check_signature(key, expires, sig):
        raise HTTPException(403, "this link is invalid or has expired; ask GET /v1/jobs/{id} for a new one")
    try:
        data = storage.get(key)
    except NotFound as exc:
        raise HTTPException(404, "the file no longer exists") from exc
    ext = key.rsplit(".", 1)[-1]
    headers = {}
    if filename and filename.replace(".", "").isalnum():
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(data, media_type=CONTENT_TYPES.get(ext, "application/octet-stream") if ext in FORMATS
                    else "application/octet-stream", headers=headers)
