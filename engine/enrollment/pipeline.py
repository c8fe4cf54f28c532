"""The enrollment steps end to end, for the service: assess one take, then finish a session.

:func:`assess_take` decodes (bounded), gates and, when the take passes, slices it; a refused take
yields no clips. :func:`finish_enrollment` checks that all takes are one speaker and that the consent
recording is that speaker, then picks the reference, the A/B hold-out and the fine-tuning dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.enrollment.asr import Transcriber
from engine.enrollment.decode import DecodedTake, DecodeLimits, UndecodableTake, decode_take
from engine.enrollment.quality import QualityReport, QualityThresholds, analyse_samples, undecodable_report
from engine.enrollment.scripts import Script
from engine.enrollment.slicing import (
    Clip,
    Rejected,
    Selection,
    SlicingError,
    select_clips,
    slice_sentence_take,
    split_long_take,
)
from engine.enrollment.vad import speech_probabilities
from engine.enrollment.verify import Audio, SpeakerCheck, SpeakerEmbedder, check_one_speaker, verify_consent


@dataclass
class TakeResult:
    """One assessed take: its report, and its clips when it passed (``accepted``)."""

    take_id: str
    report: QualityReport
    clips: list[Clip] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.report.passed and bool(self.clips)


def assess_take(
    take_id: str, data: bytes, script: Script, sentence_index: int | None,
    thresholds: QualityThresholds | None = None, limits: DecodeLimits | None = None,
    transcriber: Transcriber | None = None,
) -> TakeResult:
    """Gate one upload; ``sentence_index`` None means one long take of the whole script."""
    thresholds, lang = thresholds or QualityThresholds(), script.message_language
    try:
        take = decode_take(data, limits)
    except UndecodableTake as e:
        return TakeResult(take_id, undecodable_report(e, lang, thresholds, limits or DecodeLimits()))
    expected = " ".join(script.sentences) if sentence_index is None else script.sentences[sentence_index]
    probs = speech_probabilities(take.samples, take.sample_rate)
    report = analyse_samples(take, lang, thresholds, expected, transcriber, probs)
    result = TakeResult(take_id, report)
    if report.passed:
        _slice_into(result, take, script, sentence_index, probs)
    return result


def _slice_into(result: TakeResult, take: DecodedTake, script: Script, index: int | None, probs: object) -> None:
    snr = result.report.measurements.snr_db if result.report.measurements else None
    if index is None:
        try:
            sliced = split_long_take(take, result.take_id, script.sentences, script.language, probs, snr)
        except SlicingError as e:
            result.rejected.append(Rejected(result.take_id, -1, take.seconds, str(e)))
            return
    else:
        sliced = slice_sentence_take(take, result.take_id, index, script.sentences[index], probs, snr)
    result.clips, result.rejected = sliced.clips, sliced.rejected


@dataclass
class EnrollmentOutcome:
    """``ready`` only when one speaker read every take and also the consent statement."""

    one_speaker: SpeakerCheck
    consent: SpeakerCheck
    selection: Selection | None
    clean_seconds: float

    @property
    def ready(self) -> bool:
        return self.one_speaker.passed and self.consent.passed and self.selection is not None

    @property
    def messages(self) -> list[str]:
        return [m for m in (self.one_speaker.message, self.consent.message) if m]


def finish_enrollment(
    takes: list[TakeResult], consent: Audio, script: Script, embedder: SpeakerEmbedder,
) -> EnrollmentOutcome:
    """Speaker checks over the clips of the accepted takes (in order; a later take of a sentence replaces
    an earlier one), then the reference / hold-out / dataset choice. Clips, not takes, are compared so
    that a second voice inside one long take is found too."""
    accepted = [t for t in takes if t.accepted]
    if not accepted:
        raise SlicingError("no accepted take: record the sentences first")
    latest: dict[int, Clip] = {c.sentence_index: c for t in accepted for c in t.clips}
    audios = [Audio(f"{c.take_id}#{c.sentence_index}", c.samples, c.sample_rate) for c in latest.values()]
    one = check_one_speaker(audios, embedder, script.message_language)
    said = verify_consent(consent, audios, embedder, script.message_language)
    selection = select_clips(list(latest.values()), script.language) if one.passed and said.passed else None
    return EnrollmentOutcome(one, said, selection, round(sum(c.seconds for c in latest.values()), 2))
