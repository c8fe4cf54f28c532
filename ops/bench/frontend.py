"""Text-frontend speed: characters per second for a 3,000-character diary.

    .venv/bin/python -m ops.bench.frontend [--chars 3000] [--repeat 3] [--g2pw DIR --g2pw-tokenizer DIR]

Builds the diary from ../shared/reference/bench/diary_zh.txt repeated, then times what a render does
with it: split_text (cut1, upstream's default) and phonemize("zh") of every segment, plus chunk_diary.
The first, cold pass (jieba, pypinyin, CMUdict, language-ID model loading) is reported apart.
It runs with g2pW off (pypinyin), then on: the folders given, else ECHODIARY_G2PW_DIR /
ECHODIARY_G2PW_TOKENIZER_DIR, else the tiny fixture model of ../shared (``--g2pw off`` skips it).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from engine.text import chunk_diary, phonemize, split_text, use_g2pw, use_pypinyin
from engine.text.zh_reader import active_reader

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
DIARY = SHARED / "reference" / "bench" / "diary_zh.txt"
TINY_G2PW = SHARED / "reference" / "gpt-sovits" / "fixtures" / "models" / "G2PWModel-tiny"
TINY_TOKENIZER = SHARED / "reference" / "gpt-sovits" / "fixtures" / "models" / "chinese-roberta-tiny"


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


def measure(text: str, repeat: int) -> tuple[float, float, int]:
    """(cold pass s, best warm pass s, phones)."""
    t0 = time.perf_counter()
    phones = frontend_pass(text)
    cold = time.perf_counter() - t0
    times = []
    for i in range(repeat):
        # a fresh variant each time so no per-word cache sees the exact same text twice
        variant = text.replace("今天", "今日" if i % 2 else "今天")
        t0 = time.perf_counter()
        frontend_pass(variant)
        times.append(time.perf_counter() - t0)
    return cold, min(times), phones


def report(label: str, text: str, repeat: int) -> None:
    cold, warm, phones = measure(text, repeat)
    print(f"[{label}] diary: {len(text)} characters, {phones} phones")
    print(f"[{label}] cold pass (loads dictionaries and models): {cold:.2f} s")
    print(f"[{label}] warm pass: {warm:.3f} s (best of {repeat})")
    print(f"[{label}] characters per second: {len(text) / warm:.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chars", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--g2pw", default=os.environ.get("ECHODIARY_G2PW_DIR", str(TINY_G2PW)),
                    help="g2pW folder for the second run, or 'off'")
    ap.add_argument("--g2pw-tokenizer", default=os.environ.get("ECHODIARY_G2PW_TOKENIZER_DIR", str(TINY_TOKENIZER)))
    args = ap.parse_args()
    text = build_diary(args.chars)

    use_pypinyin()
    report("g2pW off", text, args.repeat)
    if args.g2pw == "off":
        return
    t0 = time.perf_counter()
    reader = use_g2pw(Path(args.g2pw), Path(args.g2pw_tokenizer))
    print(f"[g2pW on] {reader} loaded in {time.perf_counter() - t0:.2f} s from {args.g2pw}")
    converter = active_reader()
    runs = converter.runs if converter else 0
    report("g2pW on", text, args.repeat)
    if converter:
        print(f"[g2pW on] ONNX runs per pass: {(converter.runs - runs) / (args.repeat + 1):.0f}")


if __name__ == "__main__":
    main()
