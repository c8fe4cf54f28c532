"""BERT and HuBERT feature speed on full-size random weights.

    python -m ops.bench.bert                        # CPU, 2 threads, float32 (upstream's setting)
    python -m ops.bench.bert --models DIR           # reuse folders written by an earlier run

Inputs follow ../shared/reference/bench/. BERT for ``bert_100.txt`` (102 characters), per 100 characters:
(a) as one segment, upstream's measurement (0.505 s per 100 characters on this machine's 2 cores);
(b) cut at sentence ends, one call per sentence (upstream's per-segment habit) and (c) the same
sentences in one batched call. The diary (``diary_zh.txt``, cut5 as TTS.run does) one call per segment
against one batched call (upstream spent 10.5-11.9 s of BERT per diary run). A bfloat16 line shows the
opt-in speed and its distance from float32 (beyond the 1e-3 parity tolerance). HuBERT prompt features
for a 5 s 32 kHz voiced clip (soxr HQ to 16 kHz, 0.6 s silence appended; upstream 0.54 s).
Unless ``--no-upstream``, upstream's way (the whole BertForMaskedLM with all hidden states, one call per
segment) is timed in the same run, alternating with ours, so that the ratio holds on a busy machine.
The random models are written by a child process, so the peak RSS printed is loading + inference only
(with the upstream-way comparison loaded too, unless ``--no-upstream``).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import re
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from engine import audio
from engine.features.bert import BERT_DIM, BertFeatures, write_random_bert
from engine.features.hubert import HubertFeatures, write_random_hubert
from engine.text import PhoneSegment, phonemize_segments, split_text

BENCH = Path(__file__).resolve().parents[3] / "shared" / "reference" / "bench"
UPSTREAM = {"bert_per_100": 0.505, "bert_per_100_segments": 2.0, "hubert_5s": 0.54}


def write_models(folder: Path, seed: int) -> None:
    write_random_bert(folder / "chinese-roberta-wwm-ext-large", "full", seed)
    write_random_hubert(folder / "chinese-hubert-base", "full", seed)


def voiced_clip(seconds: float = 5.0, seed: int = 777) -> torch.Tensor:
    """A harmonic signal around 140 Hz with a wobbling pitch, an envelope and light noise, at 32 kHz."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * audio.SAMPLE_RATE)) / audio.SAMPLE_RATE
    f0 = 140 + 15 * torch.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / audio.SAMPLE_RATE
    wave = sum(torch.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.6 + 0.4 * torch.sin(2 * math.pi * 2.0 * t).abs()
    return 0.6 * envelope * wave / wave.abs().max() + 0.01 * torch.randn(t.shape, generator=gen)


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def report(label: str, times: list[float], scale: float = 1.0, upstream: float | None = None) -> None:
    best, median = min(times) * scale, statistics.median(times) * scale
    ref = f"   (upstream {upstream:.3f} s)" if upstream is not None else ""
    print(f"{label:<52} min {best:7.3f} s   median {median:7.3f} s{ref}", flush=True)


def bench(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    print(f"{args.device}, {args.dtype}, {args.threads} threads; load average {os.getloadavg()[0]:.1f} "
          "(other processes on the machine slow every figure)", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.models or Path(scratch)
        if not (folder / "chinese-roberta-wwm-ext-large" / "config.json").exists():
            start = time.perf_counter()
            child = multiprocessing.get_context("spawn").Process(target=write_models, args=(folder, args.seed))
            child.start()
            child.join()
            if child.exitcode != 0:
                raise SystemExit("writing the random models failed")
            print(f"wrote full-size random BERT and HuBERT in {time.perf_counter() - start:.1f} s", flush=True)
        text = bench_bert(folder / "chinese-roberta-wwm-ext-large", args)
        if args.device == "cpu" and args.dtype == "float32":
            bench_bert_bf16(folder / "chinese-roberta-wwm-ext-large", text, args)
        bench_hubert(folder / "chinese-hubert-base", args)
        print(f"peak RSS: {peak_rss_mb():.0f} MB", flush=True)


def upstream_way(folder: Path) -> Callable[[list[PhoneSegment]], torch.Tensor]:
    """Upstream's get_bert_feature: the whole BertForMaskedLM with all hidden states, one segment per call."""
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForMaskedLM.from_pretrained(folder, local_files_only=True).eval()

    def features(segments: list[PhoneSegment]) -> torch.Tensor:
        parts = []
        for seg in segments:
            if seg.lang != "zh":
                parts.append(torch.zeros(BERT_DIM, len(seg.phones)))
                continue
            with torch.no_grad():
                out = model(**tokenizer(seg.norm_text, return_tensors="pt"), output_hidden_states=True)
            words = out.hidden_states[-3][0][1:-1]
            parts.append(torch.repeat_interleave(words, torch.tensor(seg.word2ph), dim=0).T)
        return torch.cat(parts, dim=1)

    return features


def side_by_side(label: str, ours: Callable[[], object], theirs: Callable[[], object] | None, repeats: int,
                 scale: float = 1.0, upstream: float | None = None) -> None:
    """Ours and the upstream way alternately, so that both see the same load on a shared machine."""
    ours_t, theirs_t = [], []
    for _ in range(repeats):
        ours_t += timed(ours, 1)
        if theirs is not None:
            theirs_t += timed(theirs, 1)
    report(label, ours_t, scale, upstream)
    if theirs_t:
        ratio = statistics.median(theirs_t) / statistics.median(ours_t)
        report("  the upstream way, same run", theirs_t, scale)
        print(f"  -> ours is {ratio:.2f}x the upstream way's speed (medians)", flush=True)


def bench_bert(folder: Path, args: argparse.Namespace) -> str:
    start = time.perf_counter()
    bert = BertFeatures.load(folder, args.device, getattr(torch, args.dtype))
    print(f"BERT load: {time.perf_counter() - start:.2f} s, {len(bert.model.encoder.layer)} of 24 layers kept, "
          f"peak RSS {peak_rss_mb():.0f} MB", flush=True)
    theirs = upstream_way(folder) if args.compare_upstream else None

    text = (BENCH / "bert_100.txt").read_text(encoding="utf-8").strip()
    whole = phonemize_segments(text, "zh")
    sentences = [phonemize_segments(part, "zh") for part in re.findall(r"[^。！？]+[。！？]?", text)]
    print(f"bert_100: {len(text)} characters, {sum(len(s.phones) for s in whole)} phones, "
          f"{len(sentences)} sentences", flush=True)
    per_100 = 100.0 / len(text)
    bert.phone_features(whole)  # warm-up
    side_by_side("BERT, one segment, per 100 characters", lambda: bert.phone_features(whole),
                 theirs and (lambda: theirs(whole)), args.repeats, per_100, UPSTREAM["bert_per_100"])
    report("BERT, one call per sentence, per 100 characters",
           timed(lambda: [bert.phone_features(s) for s in sentences], args.repeats), per_100)
    report("BERT, sentences in one batched call, per 100 chars",
           timed(lambda: bert.phone_features_many(sentences), args.repeats), per_100)

    diary = (BENCH / "diary_zh.txt").read_text(encoding="utf-8").strip()
    pieces = [phonemize_segments(piece, "zh") for piece in split_text(diary, "zh", "cut5")]
    print(f"diary: {len(diary)} characters, {len(pieces)} cut5 segments", flush=True)
    side_by_side("BERT, diary, all segments batched", lambda: bert.phone_features_many(pieces),
                 theirs and (lambda: [theirs(p) for p in pieces]), max(1, args.repeats // 2))
    report("BERT, diary, one call per segment with our encoder",
           timed(lambda: [bert.phone_features(p) for p in pieces], max(1, args.repeats // 2)))
    one_by_one = [bert.phone_features(p) for p in pieces]
    batched = bert.phone_features_many(pieces)
    diff = max((a - b).abs().max().item() for a, b in zip(one_by_one, batched, strict=True))
    if theirs is not None:
        diff_up = max((a - theirs(p)).abs().max().item() for a, p in zip(batched, pieces, strict=True))
        print(f"diary: ours vs the upstream way max abs diff {diff_up:.2e}", flush=True)
    print(f"diary batched vs one-by-one max abs diff: {diff:.2e}; peak RSS {peak_rss_mb():.0f} MB", flush=True)
    return text


def bench_bert_bf16(folder: Path, text: str, args: argparse.Namespace) -> None:
    """The opt-in bfloat16 speed, and how far it lands from float32."""
    whole = phonemize_segments(text, "zh")
    reference = BertFeatures.load(folder).phone_features(whole)
    fast = BertFeatures.load(folder, "cpu", torch.bfloat16)
    fast.phone_features(whole)
    report("BERT bfloat16 (opt-in), one segment, per 100 chars",
           timed(lambda: fast.phone_features(whole), args.repeats), 100.0 / len(text))
    drift = (fast.phone_features(whole).float() - reference).abs().max().item()
    print(f"bfloat16 vs float32 max abs diff: {drift:.3f} (values up to {reference.abs().max():.2f})", flush=True)


def bench_hubert(folder: Path, args: argparse.Namespace) -> None:
    start = time.perf_counter()
    hubert = HubertFeatures.load(folder, args.device, getattr(torch, args.dtype))
    print(f"HuBERT load: {time.perf_counter() - start:.2f} s", flush=True)
    clip = voiced_clip()
    wav16k = audio.resample_hq(clip, audio.SAMPLE_RATE, audio.SSL_RATE)

    def with_resampling() -> torch.Tensor:
        return hubert.prompt_features(audio.resample_hq(clip, audio.SAMPLE_RATE, audio.SSL_RATE))

    print(f"HuBERT first call (incl. warm-up): {timed(with_resampling, 1)[0]:.3f} s", flush=True)
    report("HuBERT prompt features, 5 s clip (forward only)",
           timed(lambda: hubert.prompt_features(wav16k), args.repeats), upstream=UPSTREAM["hubert_5s"])
    report("HuBERT prompt features, 5 s clip (with soxr HQ)", timed(with_resampling, args.repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-upstream", dest="compare_upstream", action="store_false",
                        help="skip timing upstream's way (full BertForMaskedLM, one call per segment) alongside")
    parser.add_argument("--models", type=Path, help="folder holding (or to receive) the random model folders")
    bench(parser.parse_args())


if __name__ == "__main__":
    main()
