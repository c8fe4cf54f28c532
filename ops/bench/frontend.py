"""Text-frontend speed: characters per second for a 3,000-character diary.

    .venv/bin/python -m ops.bench.frontend [--chars 3000] [--repeat 3]

Builds the diary from ../shared/reference/bench/diary_zh.txt repeated, then times what a render does
with it: split_text (cut1, upstream's default) and phonemize("zh") of every segment, plus chunk_diary.
The first, cold pass (jieba, pypinyin, CMUdict, language-ID model loading) is reported apart.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from engine.text import chunk_diary, phonemize, split_text

DIARY = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "bench" / "diary_zh.txt"


def build_diary(chars: int) -> str:
    base = DIARY.read_text(encoding="utf-8").strip()
    text = base
    while len(text) < chars:
        text += "\n" + base
    return text[:chars]


def frontend_pass(text: str) -> int:
    phones = 0
    for segment in split_text(text, "zh", "cut1"):
        phones += len(phonemize(segment, "zh")[0])
    chunk_diary(text)
    return phones


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chars", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    text = build_diary(args.chars)

    t0 = time.perf_counter()
    phones = frontend_pass(text)
    cold = time.perf_counter() - t0
    times = []
    for i in range(args.repeat):
        # a fresh variant each time so no per-word cache sees the exact same text twice
        variant = text.replace("今天", "今日" if i % 2 else "今天")
        t0 = time.perf_counter()
        frontend_pass(variant)
        times.append(time.perf_counter() - t0)
    warm = min(times)
    print(f"diary: {len(text)} characters, {phones} phones")
    print(f"cold pass (loads dictionaries and models): {cold:.2f} s")
    print(f"warm pass: {warm:.3f} s (best of {args.repeat})")
    print(f"characters per second: {len(text) / warm:.0f}")


if __name__ == "__main__":
    main()
