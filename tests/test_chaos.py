"""The chaos suite's short run (``python -m ops.chaos --short``), for real: a private Redis,
PostgreSQL cluster, SeaweedFS, API and two workers with tiny models, and real kills and restarts.

One run serves every test here: it kills a pool process mid-job, restarts Redis empty (losing the
queued and in-flight messages) and restarts PostgreSQL while jobs run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jobs_fixtures
import pytest

from ops.chaos.scenarios import SHORT

pytestmark = pytest.mark.timeout(1200)  # one run: about 3 minutes on 2 free cores, far more on a crowded machine
REPO = Path(__file__).resolve().parents[1]
MEMBERS = 4
PER_MEMBER = 2


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict]:
    models = jobs_fixtures.tiny_models(tmp_path_factory)
    report = tmp_path_factory.mktemp("chaos") / "outcomes.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHODIARY_")}
    done = subprocess.run([sys.executable, "-m", "ops.chaos", "--short", "--members", str(MEMBERS),
                           "--jobs-per-member", str(PER_MEMBER), "--models", str(models), "--json", str(report)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1100)
    assert report.exists(), f"no outcomes written (exit {done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done, json.loads(report.read_text())


def _outcome(report: dict, name: str) -> dict:
    return next(o for o in report["outcomes"] if o["scenario"] == name)


def test_the_short_run_loses_nothing_duplicates_nothing_and_every_hit_job_resumes(short_run):
    done, report = short_run
    assert [o["scenario"] for o in report["outcomes"]] == SHORT
    for o in report["outcomes"]:
        assert o["submitted"] == MEMBERS * PER_MEMBER
        assert o["succeeded"] == o["one_result"] == o["submitted"], o
        assert (o["lost"], o["duplicated"], o["stuck"]) == (0, 0, 0), o
        assert o["in_flight"] >= 1  # the fault landed while jobs were running
        assert o["recovery_s"] is not None, o  # every job the fault hit moved again
        # How fast is a figure, not an assertion (a crowded machine is slower): the table and the
        # exit status judge it against the 30 s target, and nothing else may be missed.
        assert [m for m in o["misses"] if not m.startswith("recovery ")] == [], o
    missed = any(o["misses"] for o in report["outcomes"])
    assert done.returncode == (1 if missed else 0), done.stdout[-4000:]
    assert "EchoDiary chaos suite" in done.stdout and "postgres-restart" in done.stdout  # the table


def test_a_postgresql_restart_while_jobs_run_loses_nothing_and_leaves_nothing_stuck(short_run):
    _, report = short_run
    restart = _outcome(report, "postgres-restart")
    assert restart["in_flight"] >= 1
    assert restart["succeeded"] == restart["submitted"] == restart["one_result"]
    assert (restart["lost"], restart["duplicated"], restart["stuck"]) == (0, 0, 0)


def test_the_run_stops_every_process_it_started(short_run):
    _, report = short_run
    root = report["root"]
    left = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if root.encode() in seen:
            left.append((proc.name, (proc / "cmdline").read_bytes().replace(b"\0", b" ")[:200]))
    assert left == []
