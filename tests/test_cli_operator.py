"""Operator experience of the CLI: worker names, one-line errors, docs of the API settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jobs_fixtures import free_port, run_cli

from producer.cli.server import default_worker_name


def test_worker_name_uses_pid_without_a_gpu_index():
    assert default_worker_name("auto", host="box", pid=42) == "echodiary-box-42@box"
    assert default_worker_name("cuda", host="box", pid=42) == "echodiary-box-42@box"


def test_worker_name_uses_the_gpu_index_when_the_device_names_one():
    assert default_worker_name("cuda:1", host="box", pid=42) == "echodiary-box-gpu1@box"


def test_two_processes_get_two_names():
    assert default_worker_name("auto", host="box", pid=1) != default_worker_name("auto", host="box", pid=2)


# --- every failure is one line, no traceback unless --debug -------------------------------------



def _one_error_line(result) -> str:  # noqa: ANN001 - subprocess.CompletedProcess
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_missing_diary_file_is_one_line(tmp_path):
    line = _one_error_line(run_cli(tmp_path / "data", "render", str(tmp_path / "nope.txt"),
                                   "--voice", str(tmp_path / "v.wav"), "--prompt-text", "x"))
    assert "nope.txt" in line


def test_api_not_running_names_the_url_and_what_to_do(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHODIARY_")}
    env.update(ECHODIARY_BROKER_URL="redis://127.0.0.1:6379/15", ECHODIARY_API_URL=url, ECHODIARY_API_TOKEN="edy_x")
    result = subprocess.run([sys.executable, "-m", "producer.cli", "jobs"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    line = _one_error_line(result)
    assert url in line and "echodiary serve" in line and "ECHODIARY_API_URL" in line


def test_debug_shows_the_traceback(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHODIARY_")}
    env.update(ECHODIARY_BROKER_URL="redis://127.0.0.1:6379/15", ECHODIARY_API_URL=url, ECHODIARY_API_TOKEN="edy_x")
    result = subprocess.run([sys.executable, "-m", "producer.cli", "--debug", "jobs"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "ConnectError" in result.stderr


def test_bad_choice_is_a_usage_error_not_a_pydantic_dump(tmp_path):
    diary = tmp_path / "d.txt"
    diary.write_text("今天很好。", encoding="utf-8")
    result = run_cli(tmp_path / "data", "render", str(diary), "--voice", str(diary), "--prompt-text", "x",
                     "--text-lang", "xx")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--text-lang" in result.stderr and "'zh'" in result.stderr


def test_parameters_are_checked_before_any_model_is_needed(tmp_path):
    """No models folder at all: a bad parameter must be refused for what it is, not for the models."""
    diary = tmp_path / "d.txt"
    diary.write_text("今天很好。", encoding="utf-8")
    result = run_cli(tmp_path / "data", "render", str(diary), "--voice", str(diary), "--prompt-text", "x",
                     "--speed-factor", "5", models=tmp_path / "no-models")
    line = _one_error_line(result)
    assert "speed_factor" in line and "2" in line
    assert not (tmp_path / "no-models").exists()


def test_too_long_diary_refused_before_the_voice_is_made(tmp_path):
    diary = tmp_path / "d.txt"
    diary.write_text("好" * 60, encoding="utf-8")
    env_result = subprocess.run(
        [sys.executable, "-m", "producer.cli", "render", str(diary), "--voice", str(diary), "--prompt-text", "x"],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("ECHODIARY_")},
             "ECHODIARY_DATA_DIR": str(tmp_path / "data"), "ECHODIARY_MAX_TEXT_CHARS": "50",
             "ECHODIARY_MODELS_DIR": str(tmp_path / "no-models")},
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    line = _one_error_line(env_result)
    assert "60 characters" in line and "50" in line


# --- progress as plain lines off a terminal -----------------------------------------------------

def test_plain_progress_lines_when_not_a_terminal():
    import io

    from producer.cli.progress import plain_lines
    from shared.schemas import JobOut

    def job(status: str, done: int, total: int) -> JobOut:
        return JobOut.model_validate({
            "job_id": "0123456789abcdef0123456789abcdef", "kind": "synthesis", "status": status,
            "voice_id": None, "lane": "background", "progress": {"done": done, "total": total},
            "queue_position": 2 if status == "queued" else None, "error": None, "cancel_requested": False,
            "result": None, "result_expired": False, "created_at": "2026-12-03T00:00:00Z", "started_at": None,
            "finished_at": None,
        })

    out = io.StringIO()
    with plain_lines(out) as update:
        for state in [("queued", 0, 0), ("running", 0, 4), ("running", 0, 4), ("running", 2, 4),
                      ("succeeded", 4, 4)]:
            update(job(*state))
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # the repeated state is not printed twice
    assert lines[0].startswith("01234567 synthesis queued (position 2)")
    assert "2/4 chunks (50%)" in lines[2]
    assert lines[3].startswith("01234567 synthesis succeeded 4/4 chunks (100%)")


# --- members list | revoke | rm ---------------------------------------------------------------

def _members(tmp_path: Path) -> list[dict]:
    result = run_cli(tmp_path / "data", "members", "list", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_members_list_revoke_and_rm(tmp_path):
    from shared import service
    from shared.settings import Settings

    data = tmp_path / "data"
    alice = run_cli(data, "members", "add", "alice", "--admin").stdout.strip()
    bob = run_cli(data, "members", "add", "bob").stdout.strip()
    listed = _members(tmp_path)
    assert [(m["name"], m["admin"], m["active_tokens"]) for m in listed] == [("alice", True, 1), ("bob", False, 1)]

    backend = service.open_backend(Settings(_env_file=None, data_dir=data))
    revoked = run_cli(data, "members", "revoke", "bob")
    assert revoked.returncode == 0, revoked.stderr
    new_bob = revoked.stdout.strip()
    assert service.authenticate(backend, bob) is None
    assert service.authenticate(backend, new_bob).name == "bob"

    bob_id = next(m["member_id"] for m in listed if m["name"] == "bob")
    backend.storage.put(f"members/{bob_id}/voices/{'0' * 32}/reference.audio", b"x")
    removed = run_cli(data, "members", "rm", "bob", "--yes")
    assert removed.returncode == 0, removed.stderr
    assert "1 stored objects" in removed.stderr
    assert [m["name"] for m in _members(tmp_path)] == ["alice"]
    assert backend.storage.list(f"members/{bob_id}/") == []
    assert service.authenticate(backend, new_bob) is None
    assert service.authenticate(backend, alice).name == "alice"
    line = _one_error_line(run_cli(data, "members", "rm", "bob", "--yes"))
    assert "no member named 'bob'" in line


def test_members_rm_asks_first(tmp_path):
    data = tmp_path / "data"
    run_cli(data, "members", "add", "carol")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHODIARY_")}
    env["ECHODIARY_DATA_DIR"] = str(data)
    result = subprocess.run([sys.executable, "-m", "producer.cli", "members", "rm", "carol"], input="n\n", env=env,
                    cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert [m["name"] for m in _members(tmp_path)] == ["carol"]


@pytest.mark.parametrize("flag", ["ECHODIARY_API_URL", "ECHODIARY_API_TOKEN"])
def test_api_settings_are_documented(flag):
    root = Path(__file__).resolve().parents[1]
    assert flag in (root / "README.md").read_text(encoding="utf-8")
    assert flag in (root / "ops" / ".env.example").read_text(encoding="utf-8")
