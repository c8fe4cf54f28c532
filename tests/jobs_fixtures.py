"""Helpers shared by the job-system tests (audio clips, settings, waiting)."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from shared.settings import Settings


def speechlike(seconds: float, sample_rate: int = 32000, seed: int = 0) -> np.ndarray:
    """A voiced, syllable-rate modulated signal: not speech, but not silence or a pure tone either."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t)
    return (0.2 * voiced * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def audio_bytes(seconds: float = 4.0, fmt: str = "WAV", sample_rate: int = 32000, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, speechlike(seconds, sample_rate, seed), sample_rate, format=fmt)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def embedded_settings(data_dir: Path, **overrides: object) -> Settings:
    """Embedded settings. The job-system tests make their voices by the one-clip upload, which has no
    consent recording: they allow those legacy voices unless a test says otherwise."""
    overrides.setdefault("allow_legacy_voices", True)
    return Settings(_env_file=None, data_dir=data_dir, **overrides)


def wait_until(condition: Callable[[], object], timeout: float, interval: float = 0.1, what: str = "condition"):  # noqa: ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def run_cli(data_dir: Path, *args: str, models: Path | None = None, timeout: float = 300):  # noqa: ANN201
    """``echodiary ARGS`` in a subprocess, embedded mode, with only this data folder (and models) set."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHODIARY_")}
    env.update(ECHODIARY_DATA_DIR=str(data_dir), ECHODIARY_DEVICE="cpu", ECHODIARY_THREADS="1",
               ECHODIARY_ALLOW_LEGACY_VOICES="true")  # `voices add` makes one-clip voices, without consent
    if models is not None:
        env["ECHODIARY_MODELS_DIR"] = str(models)
    return subprocess.run([sys.executable, "-m", "producer.cli", *args], cwd=data_dir.parent, env=env,
                          capture_output=True, text=True, timeout=timeout)


def tiny_models(tmp_path_factory) -> Path:  # noqa: ANN001 - pytest's TempPathFactory
    """Tiny random models, written once per test session and shared by every module that asks."""
    import subprocess
    import sys


    skip_without_engine()
    folder = tmp_path_factory.getbasetemp() / "echodiary-tiny-models"
    done = folder / ".complete"
    if not done.exists():
        made = subprocess.run([sys.executable, "-m", "producer.cli", "models", "init", "--random", str(folder),
                               "--size", "tiny"], cwd=Path(__file__).resolve().parents[1],
                              capture_output=True, text=True, timeout=300)
        assert made.returncode == 0, made.stderr
        done.touch()
    return folder


def skip_without_engine() -> None:
    """Skip while engine/facade.py does not exist yet; once it does, a broken import fails loudly."""
    import importlib.util

    import pytest

    if importlib.util.find_spec("engine.facade") is None:
        pytest.skip("the engine's render module has not landed yet")
