"""Enrollment speed: CPU seconds to analyse a 6 s take (target: under 1 s), and to slice a long take.

    .venv/bin/python -m ops.bench.enrollment [--repeat 5] [--threads 1]

Generates a ~6 s English sentence with espeak-ng (padded with silence, white noise at 25 dB SNR),
then times analyse_take (decode, silero-vad, loudness, SNR, gates) with time.process_time. The first,
cold call (silero model load) is reported apart. Then one long take of the whole en-1 script is
assessed and sliced (assess_take) and the speaker embedding of one clip is timed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from engine.enrollment import espeak
from engine.enrollment.pipeline import assess_take
from engine.enrollment.quality import analyse_take
from engine.enrollment.scripts import get_script
from engine.enrollment.verify import ResemblyzerEmbedder


def six_second_take() -> tuple[bytes, float]:
    text = "Please send me the measurements before three o'clock, and thank you very much for your help."
    samples, rate = espeak.say(text, "en-us+m3")
    pad = np.zeros(int(0.5 * rate), np.float32)
    x = np.concatenate([pad, samples, pad])
    noise = np.random.default_rng(0).standard_normal(x.size).astype(np.float32)
    x = x + noise * np.sqrt(np.mean(samples**2) / 10**2.5 / np.mean(noise**2))
    return espeak.wav_bytes(x, rate), x.size / rate


def cpu(fn, *args) -> tuple[float, object]:  # noqa: ANN001 - any callable
    start = time.process_time()
    out = fn(*args)
    return time.process_time() - start, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the workers' setting)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data, seconds = six_second_take()
    cold, _ = cpu(analyse_take, data, "en")
    warm = [cpu(analyse_take, data, "en")[0] for _ in range(args.repeat)]
    print(f"take: {seconds:.2f} s; analyse_take CPU cold {cold:.3f} s, warm median {np.median(warm):.3f} s "
          f"(min {min(warm):.3f}, max {max(warm):.3f}; target < 1 s)")
    script = get_script("en-1")
    samples, rate, _ = espeak.read_with_pauses(script.sentences, "en-us+m3")
    long_cpu, result = cpu(assess_take, "long", espeak.wav_bytes(samples, rate), script, None)
    print(f"long take: {samples.size / rate:.1f} s -> {len(result.clips)} clips; assess_take CPU {long_cpu:.3f} s")
    embedder = ResemblyzerEmbedder()
    clip = result.clips[0]
    embedder.embed(clip.samples, clip.sample_rate)  # warm-up (librosa / numba)
    emb_cpu, _ = cpu(embedder.embed, clip.samples, clip.sample_rate)
    print(f"speaker embedding ({embedder.name}) of a {clip.seconds:.1f} s clip: CPU {emb_cpu:.3f} s")


if __name__ == "__main__":
    main()
