"""Guided enrollment: reading scripts, a session of takes and a consent recording, finished into a voice.

Takes are analysed when they arrive: a take that fails a quality gate is answered 422 with the
gate messages (in the session's language) and the machine-readable report, and is not kept.
"""

from __future__ import annotations

from fastapi import APIRouter, File, Query, Response, UploadFile
from fastapi.responses import JSONResponse

from producer.api.deps import BackendDep, CurrentMember, FormFields, reject_unknown_fields
from producer.enrollment_views import consent_out, parse_sentence, script_out, session_out, take_out
from shared import enrollment
from shared.enrollment_schemas import (
    ConsentOut,
    EnrollmentCreate,
    EnrollmentOut,
    NoticeOut,
    ScriptOut,
    StatementOut,
    TakeOut,
    TakeRefusedOut,
    ThresholdsOut,
)
from shared.schemas import VoiceCreated
from shared.service import Backend
from shared.tables import (
    CONSENT_TAKE,
    TAKE_PENDING,
    Member,
)

router = APIRouter(tags=["enrollment"])
REFUSED = {422: {"model": TakeRefusedOut,
                  "description": "The take failed a quality gate and was not kept (or the request is invalid)"}}
AUDIO = File(..., description="WAV, FLAC, OGG or MP3; mono or stereo, 16 kHz or more")


def refused_body(exc: enrollment.TakeRefused) -> dict:
    return TakeRefusedOut(detail=exc.detail, messages=exc.assessment.messages,
                          report=exc.assessment.report).model_dump(mode="json")


def assessor(backend: Backend) -> enrollment.Assess | None:
    """In-process in embedded mode; None (a cpu-queue job) in server mode."""
    from worker import enrollment as work

    return work.assessor(backend.settings) if backend.settings.embedded else None


# --- scripts and texts ---------------------------------------------------------------------------

@router.get("/v1/enrollments/scripts", response_model=list[ScriptOut], summary="The reading scripts")
def list_scripts(_member: CurrentMember) -> list[ScriptOut]:
    from worker import enrollment as work

    return [script_out(facts, title) for facts, title in work.all_scripts()]


@router.get("/v1/enrollments/scripts/{script_id}", response_model=ScriptOut, summary="One script's sentences")
def get_script(script_id: str, _member: CurrentMember) -> ScriptOut:
    from worker import enrollment as work

    facts = work.script_facts(script_id)
    return script_out(facts, work.script_title(script_id))


@router.get("/v1/enrollments/thresholds", response_model=ThresholdsOut,
            summary="The quality gates' thresholds per take kind (noise floor, SNR, clipping, silences...)")
def gate_thresholds(_member: CurrentMember) -> ThresholdsOut:
    from worker import enrollment as work

    return ThresholdsOut(**work.thresholds_by_kind())


@router.get("/v1/enrollments/notice", response_model=NoticeOut,
            summary="What a member accepts before enrolling (own voice only; outputs watermarked and labelled)")
def notice(_member: CurrentMember, language: str = Query("zh", pattern="^(zh|en)$")) -> NoticeOut:
    return NoticeOut(language=language, notice=enrollment.NOTICES[language])


@router.get("/v1/enrollments/consent-text", response_model=StatementOut,
            summary="The consent statement you will read (a session stores its own copy when it starts)")
def consent_text(member: CurrentMember, language: str = Query("zh", pattern="^(zh|en)$")) -> StatementOut:
    from worker import enrollment as work

    return StatementOut(language=language, statement=work.consent_statement(member.name, language))


# --- sessions ------------------------------------------------------------------------------------

@router.post("/v1/enrollments", status_code=201, response_model=EnrollmentOut,
             summary="Start an enrollment session (needs accept_notice=true); with voice_id, one that adds "
                     "samples to a ready voice")
def start(body: EnrollmentCreate, response: Response, member: CurrentMember,
          backend: BackendDep) -> EnrollmentOut:
    from worker import enrollment as work

    facts = work.script_facts(body.script_id)
    language = body.language or facts.message_language
    row = enrollment.start_session(backend, member, facts, body.voice_name, body.accept_notice,
                                   work.consent_statement(member.name, language), language, body.voice_id)
    response.headers["Location"] = f"/v1/enrollments/{row.id}"
    return session_out(row, [])


@router.get("/v1/enrollments/{enrollment_id}", response_model=EnrollmentOut,
            summary="A session: its takes with their quality reports, and what is still missing")
def get(enrollment_id: str, member: CurrentMember,
        backend: BackendDep) -> EnrollmentOut:
    return session_out(*enrollment.get_session(backend, member, enrollment_id))


def _upload(backend: Backend, member: Member, enrollment_id: str, sentence: int, audio: UploadFile,
            sent: set[str], response: Response) -> TakeOut | JSONResponse:
    reject_unknown_fields(sent, {"audio"})
    data = audio.file.read(backend.settings.max_upload_bytes + 1)
    try:
        take = enrollment.add_take(backend, member, enrollment_id, sentence, data, assessor(backend))
    except enrollment.TakeRefused as exc:
        return JSONResponse(refused_body(exc), status_code=422)
    response.status_code = 202 if take.status == TAKE_PENDING else 201
    return take_out(take)


@router.put("/v1/enrollments/{enrollment_id}/takes/{sentence}", status_code=201, response_model=TakeOut,
            responses={**REFUSED, 202: {"model": TakeOut, "description": "Still being analysed; read the session"}},
            summary="Upload the take of one sentence (numbered from 1), or 'all' for the whole script; "
                    "a new take of a sentence replaces the old one once it passes")
def put_take(enrollment_id: str, sentence: str, response: Response, sent: FormFields, member: CurrentMember,
             backend: BackendDep, audio: UploadFile = AUDIO) -> TakeOut | JSONResponse:
    return _upload(backend, member, enrollment_id, parse_sentence(sentence), audio, sent, response)


@router.put("/v1/enrollments/{enrollment_id}/consent", status_code=201, response_model=TakeOut,
            responses={**REFUSED, 202: {"model": TakeOut, "description": "Still being analysed; read the session"}},
            summary="Upload your reading of the session's consent statement")
def put_consent(enrollment_id: str, response: Response, sent: FormFields, member: CurrentMember,
                backend: BackendDep, audio: UploadFile = AUDIO) -> TakeOut | JSONResponse:
    return _upload(backend, member, enrollment_id, CONSENT_TAKE, audio, sent, response)


@router.post("/v1/enrollments/{enrollment_id}/finish", status_code=202, response_model=VoiceCreated,
             summary="Turn the takes into a voice (a job: speaker checks, reference, fine-tuning dataset)")
def finish(enrollment_id: str, response: Response, member: CurrentMember,
           backend: BackendDep) -> VoiceCreated:
    row, job = enrollment.finish_session(backend, member, enrollment_id)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return VoiceCreated(voice_id=row.voice_id or "", job_id=job.id, kind=job.kind, status=job.status)


@router.get("/v1/voices/{voice_id}/consent", response_model=ConsentOut, tags=["voices"],
            summary="A voice's consent: statement, speaker-check score, threshold and model, dataset")
def voice_consent(voice_id: str, member: CurrentMember,
                  backend: BackendDep) -> ConsentOut:
    voice, state, consent = enrollment.get_consent(backend, member, voice_id)
    return consent_out(backend, voice, state, consent)
