"""The worker side of guided enrollment: script facts, take analysis, and the finish job.

The engine (``engine.enrollment``) is imported inside the functions, never at module import, so the
API and CLI may import this module for its plain functions without loading any model.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from sqlalchemy import select

from shared import enrollment, job_state, keys
from shared.enrollment import FinishedVoice, ScriptFacts, TakeAssessment
from shared.service import Backend, NotFoundError
from shared.settings import Settings
from shared.tables import (
    CONSENT_TAKE,
    TAKE_ACCEPTED,
    WHOLE_SCRIPT,
    EnrollmentSession,
    EnrollmentTake,
    Job,
    Voice,
    VoiceConsent,
)
from worker import pipeline
from worker.claim import Lease


class Context(Protocol):
    """What a job gets from :func:`worker.runner.run_job` (its ``Context``, not imported: no cycle)."""

    backend: Backend
    job: Job
    lease: Lease


log = logging.getLogger(__name__)


# --- scripts and statements (light: data files and text only) -----------------------------------

def _facts(script: Any) -> ScriptFacts:  # noqa: ANN401 - engine.enrollment.scripts.Script
    return ScriptFacts(script.id, script.language, script.message_language, tuple(script.sentences))


def script_facts(script_id: str) -> ScriptFacts:
    from engine.enrollment.scripts import UnknownScript, get_script

    try:
        return _facts(get_script(script_id))
    except UnknownScript as exc:
        raise NotFoundError(str(exc).strip("'\"")) from exc


def all_scripts() -> list[tuple[ScriptFacts, str]]:
    """Every reading script, with its title."""
    from engine.enrollment.scripts import list_scripts

    return [(_facts(s), s.title) for s in list_scripts()]


def script_title(script_id: str) -> str:
    from engine.enrollment.scripts import get_script

    return get_script(script_id).title


def consent_statement(name: str, language: str) -> str:
    from engine.enrollment.scripts import consent_text

    return consent_text(name, language)


# --- take analysis -------------------------------------------------------------------------------

def thresholds(sentence: int) -> Any:  # noqa: ANN401 - engine.enrollment.quality.QualityThresholds
    from engine.enrollment.quality import QualityThresholds

    return QualityThresholds(max_seconds=enrollment.MAX_SECONDS[enrollment.take_kind(sentence)])


def thresholds_by_kind() -> dict[str, dict[str, Any]]:
    """Every take kind's gate thresholds as JSON, for the page's meters (drawn before a take is made)."""
    from dataclasses import asdict

    kinds = {"sentence": 0, "whole_script": WHOLE_SCRIPT, "consent": CONSENT_TAKE}
    return {kind: asdict(thresholds(sentence)) for kind, sentence in kinds.items()}


def decode_limits(settings: Settings) -> Any:  # noqa: ANN401 - engine.enrollment.decode.DecodeLimits
    from engine.enrollment.decode import DecodeLimits

    return DecodeLimits(max_bytes=settings.max_upload_bytes, max_seconds=max(enrollment.MAX_SECONDS.values()))


def assess(settings: Settings, data: bytes, script_id: str, sentence: int, statement: str) -> TakeAssessment:
    """Gate one upload (and slice it when it passes): the service's ``Assess``, bound to settings."""
    from engine.enrollment.pipeline import assess_take
    from engine.enrollment.quality import analyse_take
    from engine.enrollment.scripts import get_script

    script = get_script(script_id)
    if sentence == CONSENT_TAKE:
        report = analyse_take(data, script.message_language, thresholds(sentence), decode_limits(settings),
                              expected_text=statement)
        return _assessment(report.passed, report, [], [])
    index = None if sentence == WHOLE_SCRIPT else sentence
    result = assess_take("take", data, script, index, thresholds(sentence), decode_limits(settings))
    rejected = [{"sentence": r.sentence_index + 1 if r.sentence_index >= 0 else None,
                 "seconds": round(r.seconds, 3), "reason": r.reason} for r in result.rejected]
    messages = [] if result.accepted else [r["reason"] for r in rejected]
    return _assessment(result.accepted, result.report, [c.describe() for c in result.clips], rejected, messages)


def _assessment(accepted: bool, report: Any, clips: list[dict], rejected: list[dict],  # noqa: ANN401
                extra_messages: list[str] | None = None) -> TakeAssessment:
    data = report.to_dict()
    data["messages"] = [*data["messages"], *(extra_messages or [])]
    for clip in clips:
        clip.pop("take_id", None)
        clip.pop("text", None)
    seconds = report.measurements.seconds if report.measurements else 0.0
    return TakeAssessment(accepted, data["messages"], data, round(float(seconds), 3), clips, rejected)


def assessor(settings: Settings) -> enrollment.Assess:
    """The in-process assessor (embedded mode)."""
    return lambda data, script_id, sentence, statement: assess(settings, data, script_id, sentence, statement)


# --- jobs ----------------------------------------------------------------------------------------

def run(ctx: Context) -> str:
    """An enrollment job: analyse one take (``take_id`` in params), or finish a session."""
    if ctx.job.params.get("take_id"):
        return _run_take(ctx)
    return _run_finish(ctx)


def _load_session(backend: Backend, session_id: str) -> tuple[EnrollmentSession, list[EnrollmentTake]]:
    from engine.errors import EngineError

    with backend.db.read() as session:
        row = session.get(EnrollmentSession, session_id)
        if row is None:
            raise EngineError(f"enrollment {session_id} no longer exists")
        takes = session.exec(select(EnrollmentTake).where(EnrollmentTake.session_id == row.id)
                             .order_by(EnrollmentTake.created_at)).scalars().all()
    return row, list(takes)


def _run_take(ctx: Context) -> str:
    from engine.errors import EngineError

    backend, job, lease = ctx.backend, ctx.job, ctx.lease
    row, takes = _load_session(backend, job.params["enrollment_id"])
    take = next((t for t in takes if t.id == job.params["take_id"]), None)
    if take is None or not take.audio_key:
        raise EngineError("the take to analyse is gone (re-recorded or expired)")
    result = assess(backend.settings, backend.storage.get(take.audio_key), row.script_id, take.sentence,
                    row.statement)
    lease.check()
    enrollment.record_assessment(backend, take.id, result)
    with backend.db.write() as session:
        done = job_state.finish(session, job.id, lease.attempt, progress_done=1, progress_total=1)
    return "succeeded" if done else "lost"


def _run_finish(ctx: Context) -> str:
    from engine.errors import EngineError

    backend, job, lease = ctx.backend, ctx.job, ctx.lease
    row, takes = _load_session(backend, job.params["enrollment_id"])
    takes = [t for t in enrollment.current_takes(takes) if t.status == TAKE_ACCEPTED]
    if row.extends_voice:
        return _run_extension(ctx, row, [t for t in takes if t.sentence != CONSENT_TAKE])
    consent = next((t for t in takes if t.sentence == CONSENT_TAKE), None)
    outcome, script, embedder = _outcome(backend, row, [t for t in takes if t.sentence != CONSENT_TAKE], consent)
    if not outcome.ready:
        message = " ".join(outcome.messages) or "the recordings could not be turned into a voice"
        enrollment.finish_refused(backend, row.id, message)
        raise EngineError(message)
    lease.check()
    done, stored = _store_voice(ctx, row, outcome, script, consent, embedder)
    with backend.db.write() as session:
        finished = job_state.finish(session, job.id, lease.attempt, progress_done=1, progress_total=1)
        ok = finished and enrollment.finish_succeeded(session, row, done)
    if not ok:
        for key in stored:
            backend.storage.delete(key)
        return "lost"
    backend.storage.delete_prefix(enrollment.session_prefix(row.member_id, row.id))
    pipeline.forget_voice(backend.settings, row.voice_id or "")
    return "succeeded"


def _outcome(backend: Backend, row: EnrollmentSession, takes: list[EnrollmentTake],
             consent: EnrollmentTake | None) -> tuple[Any, Any, Any]:
    """Re-assess the kept takes (deterministic, fast) and run the speaker checks over their clips."""
    from engine.enrollment.decode import decode_take
    from engine.enrollment.pipeline import assess_take, finish_enrollment
    from engine.enrollment.scripts import get_script
    from engine.enrollment.verify import Audio, load_embedder
    from engine.errors import EngineError
    from engine.model_files import SV_FILE

    if consent is None or not consent.audio_key:
        raise EngineError("record the consent statement before finishing")
    script = get_script(row.script_id)
    settings = backend.settings
    results = [assess_take(t.id, backend.storage.get(t.audio_key or ""), script,
                           None if t.sentence == WHOLE_SCRIPT else t.sentence,
                           thresholds(t.sentence), decode_limits(settings)) for t in takes]
    said = decode_take(backend.storage.get(consent.audio_key), decode_limits(settings))
    embedder = load_embedder(settings.models_dir / SV_FILE)
    outcome = finish_enrollment(results, Audio("consent", said.samples, said.sample_rate), script, embedder)
    return outcome, script, embedder


def _ab_pair(ctx: Context, profile: bytes, holdout: Any, language: str,  # noqa: ANN401
             embedder: Any) -> tuple[bytes, dict[str, Any]]:  # noqa: ANN401
    """The held-out sentence rendered in the new voice (watermarked and labelled like every output),
    and its speaker similarity to the member's own recording of it."""
    import io

    import soundfile as sf

    from engine.enrollment.verify import Audio, ab_similarity
    from engine.profile import VoiceProfile
    from worker.cancel import cancel_checker

    rendered = pipeline.render(ctx.backend.settings, holdout.text, VoiceProfile.from_bytes(profile),
                               {"text_lang": language, "seed": 0}, "flac", ctx.job.mark, ctx.job.id,
                               on_progress=lambda _done, _total: ctx.lease.check(),
                               should_cancel=cancel_checker(ctx.lease))
    samples, rate = sf.read(io.BytesIO(rendered.data), dtype="float32")
    similarity = ab_similarity(Audio("recording", holdout.samples, holdout.sample_rate),
                               Audio("synthesis", samples, rate), embedder)
    return rendered.data, similarity


def _store_voice(ctx: Context, row: EnrollmentSession, outcome: Any, script: Any,  # noqa: ANN401
                 consent: EnrollmentTake, embedder: Any) -> tuple[FinishedVoice, list[str]]:  # noqa: ANN401
    """Reference + profile, consent audio, dataset clips and their list, the A/B pair."""
    backend, member_id = ctx.backend, ctx.job.member_id
    voice_id = row.voice_id or ""
    selection, storage = outcome.selection, backend.storage
    reference = selection.reference.flac_bytes()
    profile = pipeline.enroll(backend.settings, reference, selection.reference.text, row.voice_language)
    objects = {keys.reference_key(member_id, voice_id): reference,
               keys.profile_key(member_id, voice_id): profile,
               enrollment.consent_key(member_id, voice_id): storage.get(consent.audio_key or "")}
    prefix = enrollment.dataset_prefix(member_id, voice_id)
    names = {(c.take_id, c.sentence_index): f"{prefix}{i:03d}.flac" for i, c in enumerate(selection.dataset)}
    for clip in selection.dataset:
        objects[names[(clip.take_id, clip.sentence_index)]] = clip.flac_bytes()
    objects[prefix + "list.txt"] = selection.dataset_list(voice_id, script.language, names).encode()
    holdout = None
    if selection.holdout is not None:
        objects[enrollment.holdout_key(member_id, voice_id)] = selection.holdout.flac_bytes()
        synthesis, similarity = _ab_pair(ctx, profile, selection.holdout, row.voice_language, embedder)
        objects[enrollment.ab_synthesis_key(member_id, voice_id)] = synthesis
        holdout = {"sentence": selection.holdout.sentence_index + 1, "text": selection.holdout.text,
                   "seconds": round(selection.holdout.seconds, 3), **similarity}
    for key, data in objects.items():
        storage.put(key, data)
    check = outcome.consent
    record = VoiceConsent(voice_id=voice_id, member_id=member_id, session_id=row.id, passed=True,
                          statement=row.statement, score=check.score, threshold=check.threshold, model=check.model,
                          consent_key=enrollment.consent_key(member_id, voice_id),
                          one_speaker=outcome.one_speaker.to_dict(), clean_seconds=outcome.clean_seconds,
                          dataset_clips=len(selection.dataset), dataset_key=prefix + "list.txt", holdout=holdout)
    done = FinishedVoice(selection.reference.text, keys.reference_key(member_id, voice_id), len(reference),
                         keys.profile_key(member_id, voice_id), len(profile), record)
    return done, list(objects)


# --- more samples for a ready voice --------------------------------------------------------------

def _run_extension(ctx: Context, row: EnrollmentSession, takes: list[EnrollmentTake]) -> str:
    """The takes of a session bound to a ready voice: checked against its enrolled speaker, their clips
    added to its dataset (``dataset/<session>/``, with a list.txt of their own), its clean seconds grown."""
    from engine.errors import EngineError

    backend, job, lease = ctx.backend, ctx.job, ctx.lease
    with backend.db.read() as session:
        voice = session.get(Voice, row.voice_id) if row.voice_id else None
        record = session.get(VoiceConsent, row.voice_id) if row.voice_id else None
    if voice is None or record is None or not record.dataset_key:
        raise EngineError(f"voice {row.voice_id} no longer exists, or has no dataset to add to")
    clips, problems = _checked_new_clips(backend, row, voice, takes, record.dataset_clips)
    if problems:
        message = " ".join(problems)
        enrollment.finish_refused(backend, row.id, message)
        raise EngineError(message)
    lease.check()
    storage = backend.storage
    # The session's clips and their own list.txt in a folder of its own: no read-modify-write of the
    # voice's list, so two sessions finishing at once cannot lose each other's lines.
    prefix = enrollment.dataset_prefix(voice.member_id, voice.id) + f"{row.id}/"
    objects = {f"{prefix}{i:03d}.flac": clip for i, clip in enumerate(clips)}
    for key, clip in objects.items():
        storage.put(key, clip.flac_bytes())
    language = _script_language(row.script_id)
    listing = "".join(f"{key}|{voice.id}|{language}|{clip.text}\n" for key, clip in objects.items())
    storage.put(prefix + "list.txt", listing.encode())
    seconds = round(sum(c.seconds for c in clips), 2)
    with backend.db.write() as session:
        ok = job_state.finish(session, job.id, lease.attempt, progress_done=1, progress_total=1)
        if ok:
            enrollment.extension_succeeded(session, row, seconds, len(clips))
    if not ok:
        storage.delete_prefix(prefix)
        return "lost"
    backend.storage.delete_prefix(enrollment.session_prefix(row.member_id, row.id))
    return "succeeded"


def _script_language(script_id: str) -> str:
    from engine.enrollment.scripts import get_script

    return get_script(script_id).language


def _checked_new_clips(backend: Backend, row: EnrollmentSession, voice: Voice, takes: list[EnrollmentTake],
                       dataset_clips: int) -> tuple[list[Any], list[str]]:
    """(the new clips, why they cannot join): one speaker among them, the voice's enrolled speaker, and
    a dataset no larger than fine-tuning takes."""
    from engine.enrollment.decode import decode_take
    from engine.enrollment.pipeline import assess_take
    from engine.enrollment.scripts import get_script
    from engine.enrollment.verify import Audio, check_one_speaker, load_embedder, verify_enrolled_speaker
    from engine.finetune import MAX_ITEMS
    from engine.model_files import SV_FILE

    settings, storage, script = backend.settings, backend.storage, get_script(row.script_id)
    limits, language = decode_limits(settings), script.message_language
    results = [assess_take(t.id, storage.get(t.audio_key or ""), script,
                           None if t.sentence == WHOLE_SCRIPT else t.sentence, thresholds(t.sentence), limits)
               for t in takes]
    clips = list({c.sentence_index: c for r in results if r.accepted for c in r.clips}.values())
    if not clips:
        return [], ["no take yielded a usable clip; record the sentences again"]
    audios = [Audio(f"sentence {c.sentence_index + 1}", c.samples, c.sample_rate) for c in clips]
    enrolled = [decode_take(storage.get(key), limits)
                for key in (voice.reference_key or "", enrollment.consent_key(voice.member_id, voice.id))]
    embedder = load_embedder(settings.models_dir / SV_FILE)
    checks = [verify_enrolled_speaker(audios, [Audio(str(i), e.samples, e.sample_rate)
                                               for i, e in enumerate(enrolled)], embedder, language)]
    if len(audios) > 1:
        checks.insert(0, check_one_speaker(audios, embedder, language))
    problems = [c.message or "the speaker check failed" for c in checks if not c.passed]
    if dataset_clips + len(clips) > MAX_ITEMS:
        problems.append(f"the dataset of voice {voice.id} has {dataset_clips} clips and fine-tuning takes at "
                        f"most {MAX_ITEMS}; it cannot grow by {len(clips)}")
    return clips, problems
