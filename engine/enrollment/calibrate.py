"""Calibrate the same-speaker threshold on generated speakers and report the equal-error rate.

Speakers are espeak-ng voices and variants (en-us and Mandarin, +m1..+m7, +f1..+f4, en-gb); each
reads three script sentences. Genuine pairs: one speaker, two sentences; impostor pairs: two
speakers. Run ``python -m engine.enrollment.calibrate`` to print the scores, the EER and its threshold.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import dataclass

import numpy as np

from engine.enrollment import espeak
from engine.enrollment.scripts import get_script
from engine.enrollment.verify import SpeakerEmbedder, cosine, load_embedder


@dataclass
class Calibration:
    model: str
    eer: float
    threshold: float
    genuine: list[float]
    impostor: list[float]
    hardest_impostors: list[tuple[str, str, float]]
    genuine_by_speaker: dict[str, float]

    def summary(self) -> dict[str, object]:
        g, i = np.array(self.genuine), np.array(self.impostor)
        return {
            "model": self.model, "eer": round(self.eer, 4), "threshold": round(self.threshold, 4),
            "genuine": {"n": g.size, "min": round(g.min(), 4), "mean": round(g.mean(), 4), "max": round(g.max(), 4)},
            "impostor": {"n": i.size, "min": round(i.min(), 4), "mean": round(i.mean(), 4), "max": round(i.max(), 4)},
            "hardest_impostors": [(a, b, round(s, 4)) for a, b, s in self.hardest_impostors],
            "genuine_mean_by_speaker": {k: round(v, 4) for k, v in self.genuine_by_speaker.items()},
        }


def equal_error_rate(genuine: list[float], impostor: list[float]) -> tuple[float, float]:
    """(EER, threshold): the threshold where false accepts and false rejects are closest, and their mean."""
    g, i = np.asarray(genuine), np.asarray(impostor)
    best = (2.0, 0.0)
    for t in np.unique(np.concatenate([g, i])):
        far, frr = float(np.mean(i >= t)), float(np.mean(g < t))
        if abs(far - frr) < best[0]:
            best = (abs(far - frr), float(t), (far + frr) / 2)  # type: ignore[assignment]
    return best[2], best[1]  # type: ignore[misc]


def speakers() -> list[tuple[str, str]]:
    """(speaker voice, language) of the calibration set."""
    voices = [("en-us", "en"), ("en-gb", "en"), (espeak.ZH_VOICE, "zh")]
    voices += [(espeak.voice_for(lang, v), lang) for lang in ("en", "zh") for v in espeak.VARIANTS]
    return voices


def embed_set(embedder: SpeakerEmbedder, per_speaker: int = 3) -> dict[str, list[np.ndarray]]:
    texts = {"en": get_script("en-1").sentences, "zh": get_script("zh-1").sentences}
    out: dict[str, list[np.ndarray]] = {}
    for voice, lang in speakers():
        clips = [espeak.say(texts[lang][k], voice) for k in range(per_speaker)]
        out[voice] = [embedder.embed(s, r) for s, r in clips]
    return out


def calibrate(embedder: SpeakerEmbedder | None = None, per_speaker: int = 3) -> Calibration:
    embedder = embedder or load_embedder()
    emb = embed_set(embedder, per_speaker)
    by_speaker = {v: [cosine(a, b) for a, b in itertools.combinations(es, 2)] for v, es in emb.items()}
    genuine = [s for scores in by_speaker.values() for s in scores]
    impostor_named = [
        (va, vb, cosine(a, b))
        for (va, ea), (vb, eb) in itertools.combinations(emb.items(), 2) for a in ea for b in eb
    ]
    impostor = [s for _, _, s in impostor_named]
    eer, threshold = equal_error_rate(genuine, impostor)
    hardest = sorted(impostor_named, key=lambda x: -x[2])[:8]
    means = {v: float(np.mean(s)) for v, s in by_speaker.items()}
    return Calibration(embedder.name, eer, threshold, genuine, impostor, hardest, means)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sv-checkpoint", help="ERes2NetV2 .ckpt to calibrate instead of Resemblyzer")
    ap.add_argument("--per-speaker", type=int, default=3)
    ap.add_argument("--scores", action="store_true", help="also print every genuine and impostor score")
    args = ap.parse_args()
    result = calibrate(load_embedder(args.sv_checkpoint), args.per_speaker)
    out = result.summary()
    if args.scores:
        out |= {"genuine_scores": [round(s, 4) for s in result.genuine],
                "impostor_scores": [round(s, 4) for s in result.impostor]}
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
