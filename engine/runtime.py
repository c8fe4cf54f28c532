"""Loading every model once, on one device, in one precision.

``Models`` is what a worker process keeps warm: the GPT, the SoVITS synthesizer and the feature
extractors. Nothing here is shared between processes or mutated by a render, so two voices
rendered in one process cannot bleed into each other.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.checkpoints import load_sovits_checkpoint, load_t2s_checkpoint
from engine.features.bert import BertFeatures
from engine.features.hubert import HubertFeatures
from engine.features.speaker import SpeakerEncoder
from engine.kernels import choose_mode, use_kernels
from engine.model_files import ModelPaths, find_models
from engine.sovits.config import SoVITSConfig
from engine.sovits.model import SoVITS
from engine.t2s import Text2SemanticGPT


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """fp32 on CPU (half is slower there); fp16 on GPUs by default, bf16 when asked for."""
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def set_threads(threads: int | None) -> None:
    """Intra-op threads: all cores by default (torch's own default can be the container's host count)."""
    torch.set_num_threads(threads or max(1, len(os.sched_getaffinity(0))))


def file_identity(*paths: Path) -> str:
    """A short id of the weights (names, sizes, mtimes, head bytes): profiles and chunk caches key on it."""
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
        with open(path, "rb") as handle:
            digest.update(handle.read(65536))
    return digest.hexdigest()[:16]


@dataclass
class Models:
    t2s: Text2SemanticGPT
    max_sec: int  # from the GPT's config: upstream stops decoding after 50 * max_sec tokens
    sovits: SoVITS
    hubert: HubertFeatures
    bert: BertFeatures
    speaker: SpeakerEncoder | None  # v2Pro / v2ProPlus
    version: str
    model_id: str
    device: torch.device
    dtype: torch.dtype
    # Fine-tuned weights: the id of the models they were tuned from. Fine-tuning keeps the SSL
    # projection, the quantizer and the feature extractors frozen, so voices enrolled on those
    # models stay valid here.
    base_model_id: str | None = None

    def accepts_profile(self, model_id: str) -> bool:
        """Whether a voice profile made by the weights ``model_id`` can be rendered with these models."""
        return not model_id or model_id in (self.model_id, self.base_model_id)

    @classmethod
    def load(cls, paths: ModelPaths, device: str = "auto", precision: str = "auto", matmul: str = "auto") -> Models:
        """``matmul``: the linear kernels of the GPT and BERT (:mod:`engine.kernels`); ``exact`` for
        upstream's numbers."""
        dev = resolve_device(device)
        dtype = resolve_dtype(precision, dev)
        gpt_ckpt = load_t2s_checkpoint(paths.gpt)
        t2s = Text2SemanticGPT.from_checkpoint(gpt_ckpt, device=dev, dtype=dtype)
        bert = BertFeatures.load(paths.bert, device=dev, dtype=dtype)
        s2_ckpt = load_sovits_checkpoint(paths.sovits)
        sovits = SoVITS(SoVITSConfig.from_checkpoint_config(s2_ckpt.config, s2_ckpt.version), with_posterior=False)
        sovits.load_weights(s2_ckpt.weight)
        sovits = sovits.for_inference().to(device=dev, dtype=dtype)
        speaker = None
        if sovits.config.is_pro:
            if paths.speaker is None:
                raise ValueError(f"SoVITS {s2_ckpt.version} needs the speaker model ({paths.root}/sv/...)")
            speaker = SpeakerEncoder.load(paths.speaker, device=dev, dtype=dtype)
        models = cls(
            t2s=t2s,
            max_sec=gpt_ckpt.max_sec,
            sovits=sovits,
            hubert=HubertFeatures.load(paths.hubert, device=dev, dtype=dtype),
            bert=bert,
            speaker=speaker,
            version=s2_ckpt.version,
            model_id=file_identity(paths.gpt, paths.sovits),
            device=dev,
            dtype=dtype,
        )
        return models.use_matmul(choose_mode(matmul, dev, dtype))

    @property
    def matmul_mode(self) -> str:
        return self.t2s.matmul_mode

    def use_matmul(self, mode: str) -> Models:
        """Run the linear layers of the GPT and BERT with ``mode``'s kernels (:mod:`engine.kernels`)."""
        self.t2s.use_matmul(mode)
        use_kernels(self.bert.model, mode)
        return self

    @classmethod
    def from_folder(cls, root: Path, version: str | None = None, device: str = "auto",
                    precision: str = "auto", matmul: str = "auto") -> Models:  # fmt: skip
        return cls.load(find_models(root, version), device, precision, matmul)
