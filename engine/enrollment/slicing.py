"""Takes -> 3-10 s clips aligned to their script sentences, and the choice of the reference clip.

A take of one sentence is trimmed to its speech. One long take of the whole script is cut in the
pauses silero-vad finds: a dynamic programme picks, among all pauses, the sentence boundaries whose
clip lengths best match the lengths the sentences' phone counts predict, preferring long pauses.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf

from engine.enrollment.decode import DecodedTake
from engine.enrollment.scripts import sentence_phones
from engine.enrollment.vad import Segment, speech_probabilities, speech_segments

MIN_CLIP, MAX_CLIP = 3.0, 10.0  # upstream's reference bounds; fine-tuning clips use the same
PAD = 0.15  # silence kept around the speech of a clip
BOUNDARY_PAUSE = 0.5  # pauses shorter than this are unlikely sentence ends: they cost more as boundaries
PAUSE_WEIGHT = 0.5


class SlicingError(ValueError):
    """The take cannot be cut into the script's sentences (the message says why, for the member)."""


@dataclass
class Clip:
    """One sentence's audio cut from a take: times are seconds in that take."""

    take_id: str
    sentence_index: int
    text: str
    start: float
    end: float
    samples: np.ndarray = field(repr=False)
    sample_rate: int
    snr_db: float | None = None

    @property
    def seconds(self) -> float:
        return self.samples.size / self.sample_rate

    def flac_bytes(self) -> bytes:
        buf = io.BytesIO()
        sf.write(buf, self.samples, self.sample_rate, format="FLAC")
        return buf.getvalue()

    def describe(self) -> dict[str, object]:
        return {
            "take_id": self.take_id, "sentence_index": self.sentence_index, "text": self.text,
            "start": round(self.start, 3), "end": round(self.end, 3), "seconds": round(self.seconds, 3),
            "snr_db": self.snr_db,
        }


@dataclass
class Rejected:
    """A sentence whose clip fell outside 3-10 s (it is neither reference nor training data)."""

    take_id: str
    sentence_index: int
    seconds: float
    reason: str


@dataclass
class SliceResult:
    clips: list[Clip]
    rejected: list[Rejected]


def _cut(take: DecodedTake, take_id: str, index: int, text: str, first: Segment, last: Segment,
         room: tuple[float, float], snr_db: float | None) -> Clip | Rejected:
    """The clip from ``first.start`` to ``last.end`` with up to PAD of the pauses around it (``room``)."""
    start = max(room[0], first.start - PAD, 0.0)
    end = min(room[1], last.end + PAD, take.seconds)
    seconds = end - start
    if not MIN_CLIP <= seconds <= MAX_CLIP:
        why = "shorter than" if seconds < MIN_CLIP else "longer than"
        return Rejected(take_id, index, round(seconds, 3), f"{why} {MIN_CLIP:.0f}-{MAX_CLIP:.0f} s")
    a, b = int(start * take.sample_rate), int(end * take.sample_rate)
    return Clip(take_id, index, text, start, end, take.samples[a:b].copy(), take.sample_rate, snr_db)


def _collect(items: list[Clip | Rejected]) -> SliceResult:
    return SliceResult([c for c in items if isinstance(c, Clip)], [r for r in items if isinstance(r, Rejected)])


def slice_sentence_take(
    take: DecodedTake, take_id: str, sentence_index: int, text: str,
    probs: np.ndarray | None = None, snr_db: float | None = None,
) -> SliceResult:
    """A take of one sentence -> its trimmed clip (or a rejection when the speech is outside 3-10 s)."""
    probs = speech_probabilities(take.samples, take.sample_rate) if probs is None else probs
    segments = speech_segments(probs)
    if not segments:
        return SliceResult([], [Rejected(take_id, sentence_index, 0.0, "no speech")])
    room = (0.0, take.seconds)
    return _collect([_cut(take, take_id, sentence_index, text, segments[0], segments[-1], room, snr_db)])


def expected_shares(sentences: list[str] | tuple[str, ...], language: str) -> list[float]:
    """Each sentence's expected share of the reading time, from its phone count (punctuation excluded)."""
    counts = [sum(p.isalnum() for p in sentence_phones(s, language)) or 1 for s in sentences]
    return [c / sum(counts) for c in counts]


def align_segments(segments: list[Segment], shares: list[float]) -> list[tuple[int, int]]:
    """Split ``segments`` into len(shares) consecutive groups [(first, last)] by dynamic programming."""
    n, k = len(shares), len(segments)
    if k < n:
        raise SlicingError(f"found {k} stretches of speech but the script has {n} sentences")
    total = segments[-1].end - segments[0].start
    expected = [s * total for s in shares]

    def cost(i: int, a: int, b: int) -> float:  # sentence i read as segments a..b
        fit = math.log(max(segments[b].end - segments[a].start, 1e-3) / expected[i]) ** 2
        if b + 1 >= k:
            return fit
        pause = segments[b + 1].start - segments[b].end
        return fit + PAUSE_WEIGHT * max(0.0, math.log(BOUNDARY_PAUSE / max(pause, 1e-3)))

    best = np.full((n + 1, k + 1), np.inf)
    back = np.zeros((n + 1, k + 1), dtype=np.int64)
    best[0, 0] = 0.0
    for i in range(1, n + 1):
        for b in range(i, k - (n - i) + 1):  # sentence i ends with segment b-1
            for a in range(i - 1, b):
                c = best[i - 1, a] + cost(i - 1, a, b - 1)
                if c < best[i, b]:
                    best[i, b], back[i, b] = c, a
    groups, b = [], k
    for i in range(n, 0, -1):
        a = int(back[i, b])
        groups.append((a, b - 1))
        b = a
    return groups[::-1]


def split_long_take(
    take: DecodedTake, take_id: str, sentences: list[str] | tuple[str, ...], language: str,
    probs: np.ndarray | None = None, snr_db: float | None = None,
) -> SliceResult:
    """One take of the whole script -> one clip per sentence, cut in the pauses."""
    probs = speech_probabilities(take.samples, take.sample_rate) if probs is None else probs
    segments = speech_segments(probs)
    if not segments:
        raise SlicingError("no speech was found in the take")
    groups = align_segments(segments, expected_shares(sentences, language))
    items: list[Clip | Rejected] = []
    for i, (a, b) in enumerate(groups):
        before = (segments[a - 1].end + segments[a].start) / 2 if a > 0 else 0.0
        after = (segments[b].end + segments[b + 1].start) / 2 if b + 1 < len(segments) else take.seconds
        items.append(_cut(take, take_id, i, sentences[i], segments[a], segments[b], (before, after), snr_db))
    return _collect(items)


@dataclass
class Selection:
    """The reference clip, the held-out A/B clip (neither is trained on), and the fine-tuning dataset."""

    reference: Clip
    holdout: Clip | None
    dataset: list[Clip]
    scores: dict[tuple[str, int], float]

    def dataset_list(self, speaker: str, language: str, names: dict[tuple[str, int], str]) -> str:
        """Upstream's ``.list`` transcript file: ``path|speaker|language|text`` per clip."""
        return "".join(
            f"{names[(c.take_id, c.sentence_index)]}|{speaker}|{language}|{c.text}\n" for c in self.dataset
        )


IDEAL_REFERENCE = 6.0  # seconds: the middle of upstream's 3-10 s window


def clip_score(clip: Clip, language: str, most_phones: int) -> float:
    """Quality (SNR up to 40 dB), closeness to 6 s, and phone variety, each in [0, 1], summed."""
    snr = 1.0 if clip.snr_db is None else min(max(clip.snr_db, 0.0), 40.0) / 40.0
    length = max(0.0, 1.0 - abs(clip.seconds - IDEAL_REFERENCE) / 4.0)
    variety = len(set(sentence_phones(clip.text, language))) / max(most_phones, 1)
    return round(snr + length + variety, 4)


def select_clips(clips: list[Clip], language: str, holdout: bool = True) -> Selection:
    """Best-scoring clip -> reference; the next -> the A/B hold-out (when asked and available); rest -> dataset."""
    if not clips:
        raise SlicingError("no usable 3-10 s clip: record the sentences again")
    most = max(len(set(sentence_phones(c.text, language))) for c in clips)
    scores = {(c.take_id, c.sentence_index): clip_score(c, language, most) for c in clips}
    ranked = sorted(clips, key=lambda c: -scores[(c.take_id, c.sentence_index)])
    held = ranked[1] if holdout and len(ranked) > 2 else None
    rest = [c for c in clips if c is not ranked[0] and c is not held]
    return Selection(ranked[0], held, rest, scores)
