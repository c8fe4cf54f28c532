"""Optional ASR check: does a take say its script sentence? Off unless an ASR model folder is configured.

:func:`load_transcriber` reads a local folder only (never a hub): a CTranslate2 faster-whisper
folder (``model.bin``) when the ``faster-whisper`` package is installed, else a Hugging Face Whisper
folder (``config.json`` with ``model_type`` "whisper") through transformers.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Protocol

import numpy as np

from engine.enrollment.vad import to_vad_rate


class Transcriber(Protocol):
    name: str

    def transcribe(self, samples: np.ndarray, sample_rate: int, language: str) -> str: ...


def _tokens(text: str, language: str) -> list[str]:
    """Characters for Chinese (ignoring punctuation and spaces), lower-case words for English."""
    text = unicodedata.normalize("NFKC", text).lower()
    if language == "en":
        return re.findall(r"[a-z0-9']+", text)
    return [c for c in text if c.isalnum()]


def error_rate(expected: str, heard: str, language: str) -> float:
    """Edit distance between the token lists over the expected length (CER for zh, WER for en)."""
    ref, hyp = _tokens(expected, language), _tokens(heard, language)
    if not ref:
        return 0.0 if not hyp else 1.0
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / len(ref)


class _FasterWhisper:
    def __init__(self, folder: Path) -> None:
        from faster_whisper import WhisperModel  # optional dependency

        self.name = f"faster-whisper:{folder.name}"
        self._model = WhisperModel(str(folder), device="cpu", compute_type="int8")

    def transcribe(self, samples: np.ndarray, sample_rate: int, language: str) -> str:
        segments, _ = self._model.transcribe(to_vad_rate(samples, sample_rate), language=language, beam_size=1)
        return "".join(s.text for s in segments)


class _HfWhisper:
    def __init__(self, folder: Path) -> None:
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        self.name = f"whisper:{folder.name}"
        self._processor = WhisperProcessor.from_pretrained(folder, local_files_only=True)
        self._model = WhisperForConditionalGeneration.from_pretrained(folder, local_files_only=True).eval()

    def transcribe(self, samples: np.ndarray, sample_rate: int, language: str) -> str:
        import torch

        inputs = self._processor(to_vad_rate(samples, sample_rate), sampling_rate=16000, return_tensors="pt")
        with torch.inference_mode():
            ids = self._model.generate(inputs.input_features, language=language, task="transcribe")
        return self._processor.batch_decode(ids, skip_special_tokens=True)[0]


def load_transcriber(folder: str | os.PathLike | None) -> Transcriber | None:
    """The ASR model in ``folder``, or None when no folder is configured (the words gate is "not checked")."""
    if not folder:
        return None
    path = Path(folder)
    if (path / "model.bin").is_file():
        return _FasterWhisper(path)
    config = path / "config.json"
    if config.is_file() and json.loads(config.read_text()).get("model_type") == "whisper":
        return _HfWhisper(path)
    raise ValueError(f"{path} holds no faster-whisper (model.bin) or Whisper (config.json) model")
