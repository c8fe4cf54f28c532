"""The engine micro-benchmarks in one run: T2S decode, SoVITS decode, BERT and HuBERT features.

    python -m ops.bench.engine [--device cuda --dtype float16]

Each part is its own script (ops/bench/t2s.py, sovits.py, bert.py) on full-size random weights and
the micro-benchmark inputs of ../shared/reference/bench/bench_config.json; this runs them one after
another in fresh processes (so one part's memory does not count against the next) and passes the
device and dtype through. Upstream on this machine: T2S 28.7 tokens/s at batch 1, 79.7 at batch 8;
SoVITS RTF 0.27 (150 tokens) / 0.42 (600 tokens); BERT 0.505 s per 100 characters.
"""

from __future__ import annotations

import argparse
import subprocess
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    common = ["--device", args.device, "--dtype", args.dtype, "--threads", str(args.threads)]
    failed = 0
    for part in ("t2s", "sovits", "bert"):
        print(f"===== ops.bench.{part} =====", flush=True)
        failed |= subprocess.call([sys.executable, "-m", f"ops.bench.{part}", *common]) != 0
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
