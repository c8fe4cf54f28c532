"""The models folder, for the command line: write random models, check a folder, fetch the official files.

Thin calls into :mod:`engine.model_files`, imported lazily, so that the command line reaches the
engine only through ``worker/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class ModelsUnavailable(Exception):
    """The official files could not be fetched; the message says what to do instead."""


def init_random_models(folder: Path, size: str, version: str, seed: int) -> list[Path]:
    """A complete folder of seeded random weights (they speak noise); ValueError for a bad version."""
    from engine.model_files import init_random

    return init_random(folder, size=size, version=version, seed=seed)


def check_models(folder: Path, g2pw_dir: Path | None = None) -> list[Any]:
    """One report per expected file: ``path``, ``kind``, ``ok`` and ``detail`` (g2pW: optional)."""
    from engine.model_files import check_models as check

    return check(folder, g2pw_dir=g2pw_dir)


def models_version(folder: Path) -> str | None:
    """The GPT-SoVITS version a complete folder holds; None when it is incomplete."""
    from engine.model_files import detect_version

    return detect_version(folder)


def download_models(folder: Path, version: str) -> list[Path]:
    """Fetch the official pretrained files from the Hugging Face hub into ``folder``."""
    from engine.errors import ModelsMissing
    from engine.model_files import download_models as download

    try:
        return download(folder, version)
    except ModelsMissing as exc:
        raise ModelsUnavailable(str(exc)) from exc
