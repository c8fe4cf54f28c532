"""Response bodies of the enrollment API built from rows: the routes and the embedded client share them
(no FastAPI here, so the embedded client stays free of it)."""

from __future__ import annotations

from contracts import ENROLLMENT_STYLE
from shared import enrollment, voice_styles
from shared.enrollment_schemas import ClipOut, ConsentOut, EnrollmentOut, ScriptOut, StyleOut, TakeOut
from shared.schemas import timestamp
from shared.service import Backend, Invalid
from shared.tables import (
    CONSENT_TAKE,
    STYLE_READY,
    WHOLE_SCRIPT,
    EnrollmentSession,
    EnrollmentTake,
    Voice,
    VoiceStyle,
)


def script_out(script: enrollment.ScriptFacts, title: str) -> ScriptOut:
    return ScriptOut(script_id=script.script_id, language=script.language,
                     message_language=script.message_language, title=title, sentences=list(script.sentences))


def take_out(take: EnrollmentTake) -> TakeOut:
    sentence = take.sentence + 1 if take.sentence >= 0 else None
    report = take.report or {}
    clips = [ClipOut(sentence=c["sentence_index"] + 1, seconds=c["seconds"], start=c["start"], end=c["end"],
                     snr_db=c.get("snr_db")) for c in take.clips]
    return TakeOut(take_id=take.id, sentence=sentence, kind=enrollment.take_kind(take.sentence), status=take.status,
                   seconds=take.seconds, messages=[] if take.status == "accepted" else list(report.get("messages") or []),
                   report=take.report, clips=clips, rejected=list(take.rejected), created_at=timestamp(take.created_at))


def session_out(row: EnrollmentSession, takes: list[EnrollmentTake]) -> EnrollmentOut:
    return EnrollmentOut(
        enrollment_id=row.id, status=row.status, script_id=row.script_id, language=row.language,
        voice_name=row.voice_name, statement=row.statement, notice=row.notice,
        notice_accepted_at=timestamp(row.notice_accepted_at), takes=[take_out(t) for t in takes],
        missing_sentences=[i + 1 for i in enrollment.missing_sentences(row, takes)],
        consent_recorded=any(t.sentence == CONSENT_TAKE and t.status == "accepted" for t in takes),
        can_finish=row.status == "open" and not enrollment.finish_problems(row, takes),
        voice_id=row.voice_id, extends_voice=row.extends_voice, job_id=row.job_id, error=row.error,
        created_at=timestamp(row.created_at),
        expires_at=timestamp(row.expires_at))


def consent_out(backend: Backend, voice: Voice, state: str, consent) -> ConsentOut:  # noqa: ANN001 - VoiceConsent | None
    fields = dict(statement=None, score=None, threshold=None, model=None, one_speaker=None, clean_seconds=None,
                  dataset_clips=None, holdout=None, created_at=None)
    if consent is not None and consent.holdout:
        ttl = backend.settings.presign_ttl_s
        fields.update(
            ab_recording_url=backend.storage.url(enrollment.holdout_key(voice.member_id, voice.id), ttl, "a.flac"),
            ab_synthesis_url=backend.storage.url(enrollment.ab_synthesis_key(voice.member_id, voice.id), ttl,
                                                 "b.flac"))
    if consent is not None:
        fields.update(statement=consent.statement, score=consent.score, threshold=consent.threshold,
                      model=consent.model, one_speaker=consent.one_speaker, clean_seconds=consent.clean_seconds,
                      dataset_clips=consent.dataset_clips, holdout=consent.holdout,
                      created_at=timestamp(consent.created_at))
    return ConsentOut(voice_id=voice.id, consent=state, usable=state != "missing", **fields)


def parse_sentence(sentence: str) -> int:
    """Sentences are numbered from 1 in the API; 'all' is one take of the whole script."""
    if sentence == "all":
        return WHOLE_SCRIPT
    if not sentence.isdigit() or int(sentence) < 1:
        raise Invalid(f"sentence {sentence!r} must be a number from 1, or 'all' for the whole script")
    return int(sentence) - 1




def style_views(styles: list[VoiceStyle]) -> list[StyleOut]:
    """A voice's styles, its enrollment reference first (the default unless another style is)."""
    default = voice_styles.default_style([s for s in styles if s.status == STYLE_READY])
    first = StyleOut(name=ENROLLMENT_STYLE, status="ready", default=default is None, transcript=None, seconds=None,
                     score=None, threshold=None, model=None, job_id=None, created_at=None)
    return [first, *(style_out(s) for s in styles)]


def style_out(style: VoiceStyle) -> StyleOut:
    return StyleOut(name=style.name, status=style.status, default=style.is_default, transcript=style.transcript,
                    seconds=style.seconds or None, score=style.score, threshold=style.threshold, model=style.model,
                    job_id=style.job_id, created_at=timestamp(style.created_at))
