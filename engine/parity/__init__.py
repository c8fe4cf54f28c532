"""Numeric parity with upstream GPT-SoVITS on a fixture folder (see ``python -m engine.parity``).

Each ``check_*`` module recomputes the goldens of one kind from their stored inputs through our
own loaders and models, and reports one :class:`GoldenResult` per golden.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file


@dataclass(frozen=True)
class GoldenResult:
    name: str
    passed: bool
    max_abs_diff: float
    note: str = ""
    counted: bool = True  # False: reported for information, not comparable by construction (see note)

    def line(self) -> str:
        status = ("pass" if self.passed else "FAIL") if self.counted else "n/a "
        note = f"  ({self.note})" if self.note else ""
        return f"{self.name:<48} {status}  max_abs_diff={self.max_abs_diff:.3g}{note}"


def compare(name: str, ours: torch.Tensor, golden: torch.Tensor, atol: float, rtol: float = 0.0) -> GoldenResult:
    """Element-wise agreement within ``atol + rtol * |golden|``; shape mismatch is a failure."""
    ours = ours.detach().to("cpu")
    if tuple(ours.shape) != tuple(golden.shape):
        return GoldenResult(name, False, float("inf"), f"shape {tuple(ours.shape)} != {tuple(golden.shape)}")
    diff = (ours.double() - golden.double()).abs()
    max_diff = float(diff.max()) if diff.numel() else 0.0
    ok = bool((diff <= atol + rtol * golden.double().abs()).all())
    return GoldenResult(name, ok, max_diff)


def compare_exact(name: str, ours: torch.Tensor | list[int], golden: torch.Tensor | list[int]) -> GoldenResult:
    """Token ids, codes and other integers must agree exactly."""
    a = torch.as_tensor(ours).detach().to("cpu").long().flatten()
    b = torch.as_tensor(golden).detach().to("cpu").long().flatten()
    if a.shape != b.shape:
        return GoldenResult(name, False, float("inf"), f"length {a.numel()} != {b.numel()}")
    diff = float((a - b).abs().max()) if a.numel() else 0.0
    return GoldenResult(name, diff == 0.0, diff)


def load_golden(folder: Path, stem: str) -> tuple[dict[str, torch.Tensor], dict]:
    """A golden's tensors and, when present, its JSON side file."""
    tensors = load_file(str(folder / f"{stem}.safetensors"))
    side = folder / f"{stem}.json"
    meta = json.loads(side.read_text()) if side.exists() else {}
    return tensors, meta


Check = Callable[[Path], Iterator[GoldenResult]]
