"""Shared loading rules for the transformers-based extractors: local folders only, clear errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from transformers.utils import logging as hf_logging

from engine.errors import ModelsMissing


def require_folder(folder: str | os.PathLike, *files: str, what: str) -> Path:
    """The folder as a Path, or ModelsMissing naming what is absent (never a hub lookup)."""
    path = Path(folder)
    if not path.is_dir():
        raise ModelsMissing(f"{what}: no folder at {path}")
    missing = [name for name in files if not (path / name).is_file()]
    if missing:
        raise ModelsMissing(f"{what}: {path} lacks {', '.join(missing)}")
    return path


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load-time notices (e.g. the unused MLM head), which we check ourselves."""
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)
