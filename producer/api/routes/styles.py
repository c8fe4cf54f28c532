"""A voice's styles (personas): add one (a short reference in that style, checked against the voice's
enrolled speaker), list them, delete one, choose the default a synthesis reads in."""

from __future__ import annotations

from fastapi import APIRouter, File, Form, Response, UploadFile

from producer.api.deps import BackendDep, CurrentMember, FormFields, reject_unknown_fields
from producer.api.errors import ErrorOut
from producer.enrollment_views import style_out, style_views
from shared import styles
from shared.enrollment_schemas import StyleDefault, StyleDeleted, StyleOut
from shared.tables import STYLE_PENDING

router = APIRouter(prefix="/v1/voices/{voice_id}/styles", tags=["voices"])
UPLOAD_FIELDS = {"audio", "name", "transcript"}


@router.post("", status_code=201, response_model=StyleOut,
             responses={202: {"model": StyleOut, "description": "Still being checked; list the styles again"},
                        422: {"model": ErrorOut, "description": "The recording failed a gate, or is not the voice's enrolled speaker "
                                             "(nothing was kept)"}},
             summary="Add a style: a 3-10 s recording in that style, by the voice's enrolled speaker")
def add_style(voice_id: str, response: Response, sent: FormFields, member: CurrentMember, backend: BackendDep,
              audio: UploadFile = File(..., description="WAV, FLAC, OGG or MP3, 3 to 10 seconds, read in the style"),
              name: str = Form(..., description="The style's name, e.g. 平静, 温柔, 鼓励 (at most 32 characters, "
                                                "no / : ? # %)"),
              transcript: str = Form(..., description="What the recording says, word for word")) -> StyleOut:
    reject_unknown_fields(sent, UPLOAD_FIELDS)
    data = audio.file.read(backend.settings.max_upload_bytes + 1)
    style = styles.add_style(backend, member, voice_id, name, data, transcript)
    if style.status == STYLE_PENDING:
        response.status_code = 202
    return style_out(style)


@router.get("", response_model=list[StyleOut],
            summary="The voice's styles: its enrollment reference first, then the styles added to it")
def list_styles(voice_id: str, member: CurrentMember, backend: BackendDep) -> list[StyleOut]:
    _, rows = styles.list_styles(backend, member, voice_id)
    return style_views(rows)


@router.delete("/{name}", response_model=StyleDeleted, summary="Delete a style and its recording and profile")
def delete_style(voice_id: str, name: str, member: CurrentMember, backend: BackendDep) -> StyleDeleted:
    removed = styles.delete_style(backend, member, voice_id, name)
    return StyleDeleted(voice_id=voice_id, name=name, objects_deleted=removed)


@router.put("/default", response_model=list[StyleOut],
            summary="Choose the style syntheses read in when they name none (`enrollment`: the reference)")
def set_default(voice_id: str, body: StyleDefault, member: CurrentMember, backend: BackendDep) -> list[StyleOut]:
    styles.set_default_style(backend, member, voice_id, body.name)
    _, rows = styles.list_styles(backend, member, voice_id)
    return style_views(rows)
