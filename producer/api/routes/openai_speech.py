"""OpenAI-compatible speech: ``POST /v1/audio/speech`` and ``GET /v1/models``, for OpenAI's clients.

A speech request is a synthesis job like any other (listed, watermarked, labelled, counted in the
quotas), always in the interactive lane, and its audio streams back as it renders (the pieces of
``GET /v1/jobs/{id}/audio``; ``X-Job-Id`` names the job). Mapping onto our vocabulary:

* ``voice``: one of the member's voice ids or names, or ``voice:style`` for one of its styles.
  ``instructions`` choose a style when they are exactly its name; other instructions are ignored
  (GPT-SoVITS takes its manner from the reference, not from text).
* ``input``: read as Chinese (with English inside) when it has Han characters, else as English
  (OpenAI's requests name no language; see :func:`_text_lang`).
* ``response_format``: mp3, opus (Ogg Opus), flac, wav as they are; pcm is our WAV without its
  header (16-bit mono at 32 kHz, not OpenAI's 24 kHz: ``X-Sample-Rate`` says so). aac is refused:
  the encoders we have (libsndfile) write no AAC.
* ``speed``: OpenAI's 0.25-4 is accepted; our engine reads at the speed_factor range of
  :class:`contracts.synthesis.SynthesisParams`, the same rate, so a speed outside it is refused.
* ``stream_format``: ``audio`` (the bytes) or ``sse`` (``speech.audio.delta`` events with base64
  audio, then ``speech.audio.done``).

Errors are OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, here only.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from contracts import SynthesisParams
from producer.api.audio_stream import EVENT_STREAM, NO_BUFFERING, StreamBroken, sse
from producer.api.deps import BackendDep, bearer, current_member
from producer.error_status import status_for
from shared import listening, service, voice_styles
from shared.schemas import SynthesisRequest
from shared.service import Backend, ServiceError
from shared.tables import INTERACTIVE, READY, Member, Voice

router = APIRouter(tags=["openai"])

MODELS = ("gpt-sovits", "tts-1", "tts-1-hd", "gpt-4o-mini-tts")  # ours, and OpenAI's names for drop-in use
MAX_INPUT = 4096
FORMATS = {"mp3": "mp3", "opus": "ogg", "flac": "flac", "wav": "wav", "pcm": "wav"}
MEDIA_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "flac": "audio/flac", "wav": "audio/wav",
               "pcm": "audio/pcm"}
PCM_RATE = 32000
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 409: "invalid_request_error", 413: "invalid_request_error",
               415: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error"}


class SpeechRequest(BaseModel):
    model: str
    input: str = Field(max_length=MAX_INPUT)
    voice: str
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)
    instructions: str | None = None
    stream_format: Literal["audio", "sse"] = "audio"


class OpenAIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def response(self) -> JSONResponse:
        kind = ERROR_TYPES.get(self.status, "server_error" if self.status >= 500 else "invalid_request_error")
        body = {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status)


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorOut(BaseModel):
    error: ErrorBody


ERRORS: dict[int | str, dict] = {code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 429, 503)}


def _speed_bounds() -> tuple[float, float]:
    """The engine's speed_factor range, as contracts/synthesis.py defines it."""
    meta = SynthesisParams.model_fields["speed_factor"].metadata
    return (next(m.ge for m in meta if hasattr(m, "ge")), next(m.le for m in meta if hasattr(m, "le")))


async def _member(request: Request, backend: Backend) -> Member:
    credentials = await bearer(request)
    try:
        return await run_in_threadpool(current_member, request, credentials, backend)
    except HTTPException as exc:
        raise OpenAIError(exc.status_code, str(exc.detail), code="invalid_api_key") from exc


async def _body(request: Request) -> SpeechRequest:
    try:
        raw = json.loads(await request.body() or b"null")
        return SpeechRequest.model_validate(raw)
    except json.JSONDecodeError as exc:
        raise OpenAIError(400, f"the body is not JSON: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first.get("loc", ())) or None
        raise OpenAIError(400, f"{param or 'body'}: {first.get('msg', 'invalid')}", param=param) from exc


def _voice_and_style(backend: Backend, member: Member, voice: str) -> tuple[Voice, str | None]:
    """(voice, style named after a colon or None); an unknown style is OpenAI's 400 on ``voice``."""
    voices = [v for v in service.list_voices(backend, member) if v.status == READY]
    for v in voices:
        if voice in (v.id, v.name):
            return v, None
    name, _, style = voice.rpartition(":")
    for v in voices:
        if name and name in (v.id, v.name):
            problem = _style_problem(backend, v, style)
            if problem:
                raise OpenAIError(400, problem, param="voice", code="unknown_style")
            return v, style
    known = ", ".join(v.name for v in voices) or "none yet: enroll one first"
    raise OpenAIError(404, f"no ready voice of yours is called {voice!r} (your voices: {known})", param="voice",
                      code="voice_not_found")


def _style_problem(backend: Backend, voice: Voice, style: str) -> str | None:
    """Why ``voice`` has no style ``style`` (the check a queued synthesis makes), or None."""
    with backend.db.read() as session:
        return voice_styles.resolve(session, voice, style)[1]


def _style_from_instructions(backend: Backend, voice: Voice, instructions: str | None) -> str | None:
    """OpenAI's free-text ``instructions`` choose a style only when they are exactly one's name."""
    wanted = (instructions or "").strip()
    return wanted if wanted and _style_problem(backend, voice, wanted) is None else None


_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA_OR_HANGUL = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")


def _text_lang(text: str) -> str:
    """OpenAI's requests name no language. Han characters read as Chinese with English inside (a
    language detector takes a line such as "2024年5月2日，" for Japanese); kana or Hangul go to
    detection, which says plainly that only Chinese and English can be read; else English."""
    if _KANA_OR_HANGUL.search(text):
        return "auto"
    return "zh" if _HAN.search(text) else "en"


def _check(body: SpeechRequest) -> None:
    if body.model not in MODELS:
        raise OpenAIError(404, f"model {body.model!r} does not exist; GET /v1/models lists {', '.join(MODELS)}",
                          param="model", code="model_not_found")
    if body.response_format == "aac":
        raise OpenAIError(400, "response_format aac cannot be encoded here (our encoders write no AAC); "
                               "choose mp3, opus, flac, wav or pcm", param="response_format",
                          code="unsupported_response_format")
    low, high = _speed_bounds()
    if not low <= body.speed <= high:
        raise OpenAIError(400, f"speed {body.speed} is outside what this server reads at ({low} to {high})",
                          param="speed", code="speed_out_of_range")
    if not body.input.strip():
        raise OpenAIError(400, "input is empty", param="input")


def _submit(backend: Backend, member: Member, body: SpeechRequest) -> listening.JobAudio:
    _check(body)
    voice, style = _voice_and_style(backend, member, body.voice)
    style = style or _style_from_instructions(backend, voice, body.instructions)
    request = SynthesisRequest(text=body.input, voice_id=voice.id, style=style,
                               format=FORMATS[body.response_format], speed_factor=body.speed,
                               text_lang=_text_lang(body.input))
    try:
        job, _ = service.create_synthesis(backend, member, request, lane=INTERACTIVE)
        return listening.open_audio(backend, member, job.id)
    except ServiceError as exc:
        raise OpenAIError(status_for(exc), exc.detail) from exc


@router.post("/v1/audio/speech", summary="OpenAI-compatible text to speech, streamed as it renders",
             responses={200: {"content": {t: {} for t in {*MEDIA_TYPES.values(), EVENT_STREAM}}}, **ERRORS},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": SpeechRequest.model_json_schema()}}}})
async def speech(request: Request, backend: BackendDep) -> Response:
    try:
        member = await _member(request, backend)
        body = await _body(request)
        audio = await run_in_threadpool(_submit, backend, member, body)
    except OpenAIError as exc:
        return exc.response()
    headers = {**NO_BUFFERING, "X-Job-Id": audio.job_id, "Location": f"/v1/jobs/{audio.job_id}"}
    if body.stream_format == "sse":
        return StreamingResponse(_sse(audio, body, len(body.input)), media_type=EVENT_STREAM, headers=headers)
    if body.response_format == "pcm":
        headers["X-Sample-Rate"] = str(PCM_RATE)
        return StreamingResponse(pcm_of_wav(_bytes(audio)), media_type=MEDIA_TYPES["pcm"], headers=headers)
    return StreamingResponse(_bytes(audio), media_type=MEDIA_TYPES[body.response_format], headers=headers)


@router.get("/v1/models", summary="The model names /v1/audio/speech accepts (OpenAI's list shape)",
            responses=ERRORS)
async def models(request: Request, backend: BackendDep) -> Response:
    try:
        await _member(request, backend)
    except OpenAIError as exc:
        return exc.response()
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "echodiary"} for name in MODELS]
    return JSONResponse({"object": "list", "data": data})


def _bytes(audio: listening.JobAudio) -> Iterator[bytes]:
    for piece in audio.pieces:
        if piece.end and piece.error:
            raise StreamBroken(f"job {audio.job_id}: {piece.error}")
        if piece.data:
            yield piece.data


def pcm_of_wav(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The samples of a WAV stream: everything after its data chunk's header (which may come after
    other chunks, such as the stored file's AIGC label)."""
    head = b""
    chunks = iter(chunks)
    for chunk in chunks:
        head += chunk
        start = _data_start(head)
        if start is not None:
            if len(head) > start:
                yield head[start:]
            yield from chunks
            return


def _data_start(head: bytes) -> int | None:
    pos = 12
    while pos + 8 <= len(head):
        size = int.from_bytes(head[pos + 4:pos + 8], "little")
        if head[pos:pos + 4] == b"data":
            return pos + 8
        pos += 8 + size + (size & 1)
    return None


def _sse(audio: listening.JobAudio, body: SpeechRequest, chars: int) -> Iterator[bytes]:
    chunks = _bytes(audio)
    if body.response_format == "pcm":
        chunks = pcm_of_wav(chunks)
    try:
        for data in chunks:
            yield _event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()})
    except StreamBroken as exc:
        yield _event({"type": "error", "error": {"message": str(exc), "type": "server_error", "param": None,
                                                 "code": "job_stopped"}})
        return
    yield _event({"type": "speech.audio.done",
                  "usage": {"input_tokens": chars, "output_tokens": 0, "total_tokens": chars}})


def _event(data: dict) -> bytes:
    return sse(None, data)
