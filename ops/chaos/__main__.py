"""``python -m ops.chaos``: start a private stack, run the scenarios one at a time, print the table.

Exits 0 when every scenario met its targets (all jobs succeeded, the poison job failed with its
message, exactly one result object each, 0 lost / duplicated / stuck, recovery under 30 s), 1 when
one missed, 2 when the stack could not be started. Everything started is stopped on the way out,
also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from ops.chaos.measure import Outcome, run_scenario
from ops.chaos.scenarios import SCENARIOS, SHORT
from ops.chaos.stack import ChaosStack, make_tiny_models

DEFAULT_MODELS = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "echodiary" / "chaos-tiny-models"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ops.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=None,
                        help=f"comma-separated, from: {', '.join(SCENARIOS)} (default: all; --short: {', '.join(SHORT)})")
    parser.add_argument("--jobs-per-member", type=int, default=None, help="jobs per member per scenario (default 3; --short 2)")
    parser.add_argument("--members", type=int, default=4, help="household members submitting jobs (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--short", action="store_true", help="a few scenarios with few jobs (for CI)")
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS,
                        help="a tiny models folder (made there once if absent)")
    parser.add_argument("--settle-s", type=float, default=None, help="how long jobs may take after a fault")
    parser.add_argument("--json", type=Path, default=None, help="also write the outcomes to this file")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (logs, data) afterwards")
    args = parser.parse_args(argv)
    names = args.scenarios.split(",") if args.scenarios else (SHORT if args.short else list(SCENARIOS))
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    args.names = names
    args.per_member = args.jobs_per_member or (2 if args.short else 3)
    if args.members < 1 or args.per_member < 1:
        parser.error("--members and --jobs-per-member must be at least 1")
    return args


def table(outcomes: list[Outcome], load: str):  # noqa: ANN201 - rich.table.Table
    from rich.table import Table

    t = Table(title=f"EchoDiary chaos suite (load average at the end: {load})")
    for column in ("scenario", "submitted", "succeeded", "failed as expected", "one result", "lost",
                   "duplicated", "stuck", "in flight", "recovery s", "drained s", "verdict"):
        t.add_column(column, justify="left" if column in ("scenario", "verdict") else "right")
    for o in outcomes:
        misses = o.misses()
        t.add_row(o.scenario, str(o.submitted), str(o.succeeded), str(o.failed_as_expected), str(o.one_result),
                  str(o.lost), str(o.duplicated), str(o.stuck), str(o.in_flight),
                  "—" if o.recovery_s is None else f"{o.recovery_s:.1f}",
                  "—" if o.drained_s is None else f"{o.drained_s:.1f}",
                  "[green]ok[/green]" if not misses else "[red]" + "; ".join(misses) + "[/red]")
    return t


def _stop_on_signal(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    args = parse(sys.argv[1:] if argv is None else argv)
    console = Console(width=None if sys.stdout.isatty() else 150)  # a log file gets the whole table
    signal.signal(signal.SIGTERM, _stop_on_signal)
    root = Path(tempfile.mkdtemp(prefix="echodiary-chaos-"))
    outcomes: list[Outcome] = []
    stack = None
    try:
        console.print(f"chaos run in {root}: tiny models in {args.models}")
        stack = ChaosStack(root, make_tiny_models(args.models), workers=args.workers)
        started = time.monotonic()
        stack.start(args.members)
        console.print(f"stack up in {time.monotonic() - started:.0f} s: {args.members} members, "
                      f"{args.workers} workers; scenarios: {', '.join(args.names)}")
        serial = 0
        for name in args.names:
            settle = args.settle_s or 180 + 20 * args.per_member * args.members / args.workers
            console.print(f"[bold]{name}[/bold]: {SCENARIOS[name].what}")
            outcome = run_scenario(stack, SCENARIOS[name], args.per_member, serial, settle)
            serial += args.per_member * len(stack.members)
            outcomes.append(outcome)
            console.print(f"  {'ok' if not outcome.misses() else 'MISSED: ' + '; '.join(outcome.misses())}")
    except KeyboardInterrupt:
        console.print("interrupted: stopping everything the chaos run started")
        return 130
    except RuntimeError as exc:
        console.print(f"[red]the chaos stack failed: {exc}[/red] (logs in {root / 'logs'})")
        args.keep = True
        return 2
    finally:
        if stack is not None:
            stack.close()
        if outcomes:
            load = " ".join(f"{x:.2f}" for x in os.getloadavg())
            console.print(table(outcomes, load))
            if args.json:
                args.json.write_text(json.dumps({"load": load, "root": str(root), "outcomes": [o.as_dict() for o in outcomes]}, indent=2))
        if not args.keep and not any(o.misses() for o in outcomes):
            shutil.rmtree(root, ignore_errors=True)
        else:
            console.print(f"logs kept in {root / 'logs'}")
    return 1 if any(o.misses() for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
