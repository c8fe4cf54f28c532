"""Loading of the small data files shipped inside engine/text/data (read once per process)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources


def data_text(name: str) -> str:
    return resources.files("engine.text").joinpath("data").joinpath(name).read_text(encoding="utf-8")


def word_set(name: str) -> frozenset[str]:
    """Whitespace-separated words of a data file; lines starting with '#' are comments."""
    lines = (line for line in data_text(name).splitlines() if not line.startswith("#"))
    return frozenset(" ".join(lines).split())


@cache
def erhua_words() -> tuple[frozenset[str], frozenset[str]]:
    """(must-merge words, never-merge words)."""
    groups: dict[str, list[str]] = {}
    current = ""
    for line in data_text("erhua_words.txt").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line.startswith("["):
            current = line.strip("[] ")
            continue
        groups.setdefault(current, []).extend(line.split())
    return frozenset(groups["must"]), frozenset(groups["never"])


@cache
def symbols_v2() -> tuple[str, ...]:
    return tuple(json.loads(data_text("symbols_v2.json"))["symbols"])
