"""`python -m engine.parity` on the public fixtures: every golden recomputed through our loaders."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "reference" / "gpt-sovits" / "fixtures"


def test_parity_runner_passes_every_golden_of_the_public_fixtures():
    out = subprocess.run([sys.executable, "-m", "engine.parity", str(FIXTURES)], capture_output=True, text=True,
                         cwd=REPO, check=False)  # fmt: skip
    last = out.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"goldens passed: (\d+)/(\d+)", last)
    assert match, out.stdout[-2000:] + out.stderr[-2000:]
    passed, total = map(int, match.groups())
    assert out.returncode == 0 and passed == total, out.stdout
    assert total >= 70  # every kind: audio, s1, s2 (three versions), features, end to end
    for kind in ("audio.", "s1 ", "s2_v2.", "s2_v2Pro.", "s2_v2ProPlus.", "sv.", "hubert.", "bert.", "e2e.noise0"):
        assert kind in out.stdout, f"no {kind!r} goldens were checked"


def test_parity_runner_fails_on_a_folder_without_goldens(tmp_path):
    out = subprocess.run([sys.executable, "-m", "engine.parity", str(tmp_path)], capture_output=True, text=True,
                         cwd=REPO, check=False)  # fmt: skip
    assert out.returncode != 0
    assert "goldens passed: 0/" in out.stdout
