"""``python -m engine.parity FIXTURES``: recompute every golden and compare with upstream's values."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from pathlib import Path

from engine.parity import GoldenResult

# One module per kind of golden; each exposes ``check(folder) -> Iterator[GoldenResult]``.
CHECK_MODULES = ["audio", "s1", "s2", "features", "e2e"]


def run(folder: Path) -> list[GoldenResult]:
    results: list[GoldenResult] = []
    for name in CHECK_MODULES:
        try:
            module = importlib.import_module(f"engine.parity.check_{name}")
            for result in module.check(folder):
                print(result.line(), flush=True)
                results.append(result)
        except Exception as exc:  # a crash in one kind must not hide the others
            traceback.print_exc()
            result = GoldenResult(f"{name} (crashed)", False, float("inf"), f"{type(exc).__name__}: {exc}")
            print(result.line(), flush=True)
            results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.parity", description=__doc__)
    parser.add_argument("folder", type=Path, help="fixture folder with the layout of the reference fixtures/")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"error: {args.folder} is not a folder", file=sys.stderr)
        return 2
    results = [r for r in run(args.folder) if r.counted]
    passed = sum(r.passed for r in results)
    print(f"goldens passed: {passed}/{len(results)}")
    return 0 if results and passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
