"""The job that checks and enrolls a voice's style (``style_id`` in an enroll job's params).

Gates of guided enrollment on the recording, then the speaker check against the voice's enrollment
(its reference and consent recording), then a profile of it. A refused style leaves nothing behind:
its row and its recording go before the job records why.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import delete, update

from shared import job_state, keys, styles
from shared.enrollment import consent_key
from shared.service import REFERENCE_SECONDS, Backend
from shared.tables import STYLE_READY, Job, Voice, VoiceStyle
from worker import enrollment as enrollment_work
from worker import pipeline
from worker.claim import Lease


class Context(Protocol):
    backend: Backend
    job: Job
    lease: Lease


def run(ctx: Context) -> str:
    from engine.errors import EngineError

    backend = ctx.backend
    with backend.db.read() as session:
        style = session.get(VoiceStyle, ctx.job.params["style_id"])
        voice = session.get(Voice, style.voice_id) if style is not None else None
    if style is None or voice is None:
        raise EngineError("the style was deleted before it could be checked")
    try:
        profile, check, seconds = _check_and_enroll(backend, voice, style)
    except BaseException:
        _forget(backend, style)
        raise
    key = styles.profile_key(style.member_id, voice.id, style.id)
    ctx.lease.check()
    backend.storage.put(key, profile)
    with backend.db.write() as session:
        done = job_state.finish(session, ctx.job.id, ctx.lease.attempt, progress_done=1, progress_total=1)
        changed = done and session.exec(update(VoiceStyle).where(VoiceStyle.id == style.id).values(
            status=STYLE_READY, profile_key=key, profile_bytes=len(profile), seconds=seconds,
            score=check.score, threshold=check.threshold, model=check.model)).rowcount
    if not changed:  # deleted meanwhile (the job still did its work), or this attempt lost the job
        backend.storage.delete_prefix(keys.style_prefix(style.member_id, voice.id, style.id))
    return "succeeded" if done else "lost"


def _forget(backend: Backend, style: VoiceStyle) -> None:
    with backend.db.write() as session:
        session.exec(delete(VoiceStyle).where(VoiceStyle.id == style.id))
    backend.storage.delete_prefix(keys.style_prefix(style.member_id, style.voice_id, style.id))


def _check_and_enroll(backend: Backend, voice: Voice, style: VoiceStyle) -> tuple[bytes, Any, float]:
    """(profile bytes, the speaker check, seconds); EngineError with the member's message when refused."""
    from engine.enrollment.decode import decode_take
    from engine.enrollment.quality import QualityThresholds, analyse_take
    from engine.enrollment.verify import Audio, load_embedder, verify_enrolled_speaker
    from engine.errors import EngineError
    from engine.model_files import SV_FILE

    settings, storage = backend.settings, backend.storage
    language = "en" if voice.language == "en" else "zh"
    data = storage.get(style.reference_key)
    limits = enrollment_work.decode_limits(settings)
    low, high = REFERENCE_SECONDS  # a style is a reference: the engine's 3-10 s
    report = analyse_take(data, language, QualityThresholds(min_seconds=low, max_seconds=high), limits,
                          expected_text=style.transcript)
    if not report.passed:
        raise EngineError(" ".join(report.to_dict()["messages"]) or "the style's recording was refused")
    said = decode_take(data, limits)
    enrolled = [decode_take(storage.get(key), limits)
                for key in (voice.reference_key or "", consent_key(voice.member_id, voice.id))]
    embedder = load_embedder(settings.models_dir / SV_FILE)
    check = verify_enrolled_speaker([Audio(style.name, said.samples, said.sample_rate)],
                                    [Audio(str(i), e.samples, e.sample_rate) for i, e in enumerate(enrolled)],
                                    embedder, language)
    if not check.passed:
        raise EngineError(check.message or "this recording is not the voice's enrolled speaker")
    profile = pipeline.enroll(settings, data, style.transcript, voice.language)
    return profile, check, round(float(said.seconds), 3)
