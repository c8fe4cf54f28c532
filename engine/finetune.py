"""Fine-tuning a member's voice, as upstream's WebUI does it: prepare the clips, train SoVITS (s2),
then the GPT (s1), and hand back both in the official file formats, packed into one zip.

    data = finetune(models_dir, [(audio_bytes, transcript, "zh")], params={"sovits_epochs": 8,
                    "gpt_epochs": 15}, device="auto", on_progress=..., should_cancel=...)
    models = load_finetuned(models_dir, data, device="auto", precision="auto", base=engine.models)

The zip holds ``sovits.pth`` (fine-tuned layout: fp16, no ``enc_q``, ``05``/``06`` header for Pro),
``gpt.ckpt`` (s1 layout) and ``finetune.json`` (what was trained). Both weight files also load in
upstream's WebUI unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from engine.checkpoints import (
    load_discriminator_checkpoint,
    load_sovits_checkpoint,
    load_t2s_checkpoint,
    save_sovits_checkpoint,
    save_t2s_checkpoint,
)
from engine.errors import BadReference, Cancelled, EngineError, ModelsMissing
from engine.features.bert import BertFeatures
from engine.features.hubert import HubertFeatures
from engine.features.speaker import SpeakerEncoder
from engine.model_files import DISCRIMINATOR_FILES, ModelPaths, find_models
from engine.runtime import Models, resolve_device
from engine.sovits.config import SoVITSConfig
from engine.sovits.model import SoVITS
from engine.t2s import Text2SemanticGPT
from engine.training import gpt as s1
from engine.training import sovits as s2
from engine.training.data import Item, TrainItem, prepare_items

FORMAT = "echodiary-finetune/1"
SOVITS_NAME, GPT_NAME, META_NAME = "sovits.pth", "gpt.ckpt", "finetune.json"
MAX_ITEMS = 200  # a household's clips; more is a mistake, not a dataset

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class FinetuneParams:
    sovits_epochs: int = 8
    gpt_epochs: int = 15
    sovits_lr: float = s2.LR
    gpt_lr: float = s1.LR
    seed: int = 0

    @classmethod
    def from_dict(cls, params: dict[str, Any] | None) -> FinetuneParams:
        params = dict(params or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown fine-tuning parameters {unknown}; known: {sorted(known)}")
        out = cls(**params)
        if out.sovits_epochs < 0 or out.gpt_epochs < 0 or out.sovits_epochs + out.gpt_epochs == 0:
            raise ValueError("fine-tuning needs a positive number of SoVITS and/or GPT epochs")
        return out


@dataclass
class Counter:
    """Steps done out of the whole job (both stages), reported after every step."""

    total: int
    on_progress: Progress | None
    should_cancel: Callable[[], bool] | None
    done: int = 0

    def check(self) -> None:
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled(f"fine-tuning was cancelled after {self.done} of {self.total} steps")

    def tick(self) -> None:
        self.done += 1
        if self.on_progress is not None:
            self.on_progress(self.done, self.total)


# -- loading the pretrained parts -----------------------------------------------------------------
def load_trainable_sovits(paths: ModelPaths, device: torch.device) -> tuple[SoVITS, s2.MultiPeriodDiscriminator, dict[str, Any]]:
    """The pretrained generator with its posterior encoder and the discriminator, in float32."""
    ckpt = load_sovits_checkpoint(paths.sovits)
    if not ckpt.has_posterior_encoder:
        raise ModelsMissing(f"{paths.sovits} has no posterior encoder (enc_q): fine-tuning starts from the "
                            "released pretrained SoVITS file, not from a fine-tuned one")  # fmt: skip
    if paths.discriminator is None:
        raise ModelsMissing(f"fine-tuning needs the pretrained discriminator: put it at "
                            f"{paths.root / DISCRIMINATOR_FILES[paths.version]}")  # fmt: skip
    generator = SoVITS(SoVITSConfig.from_checkpoint_config(ckpt.config, ckpt.version), with_posterior=True)
    generator.load_weights(ckpt.weight)
    disc = s2.load_discriminator(load_discriminator_checkpoint(paths.discriminator), ckpt.version)
    return generator.to(device), disc.to(device), ckpt.config


def prepare(paths: ModelPaths, items: Sequence[Item], generator: SoVITS, device: torch.device,
            base: Models | None = None) -> list[TrainItem]:  # fmt: skip
    """Features of every clip, with ``base``'s extractors when given (a worker's warm models), else
    loaded here and dropped again before training starts."""
    if base is not None:
        hubert, bert, speaker = base.hubert, base.bert, base.speaker
    else:
        hubert = HubertFeatures.load(paths.hubert, device=device)
        bert = BertFeatures.load(paths.bert, device=device)
        speaker = SpeakerEncoder.load(paths.speaker, device=device) if generator.config.is_pro and paths.speaker else None
    if generator.config.is_pro and speaker is None:
        raise ModelsMissing(f"SoVITS {generator.config.version} needs the speaker model ({paths.root}/sv/...)")
    generator.eval()
    return prepare_items(items, generator, hubert, bert, speaker)


# -- the two stages ---------------------------------------------------------------------------------
def train_sovits(generator: SoVITS, disc: torch.nn.Module, data: list[TrainItem], epochs: int, lr: float,
                 seed: int, counter: Counter) -> list[s2.S2Losses]:  # fmt: skip
    trainer = s2.SoVITSTrainer(generator, disc, lr=lr, seed=seed)
    order = torch.Generator().manual_seed(seed)
    history = []
    for _ in range(epochs):
        for index in torch.randperm(len(data), generator=order).tolist():
            counter.check()
            history.append(trainer.step(s2.collate([data[index]])))
            counter.tick()
        trainer.end_epoch()
    return history


def train_gpt(model: Text2SemanticGPT, data: list[TrainItem], epochs: int, lr: float, seed: int,
              counter: Counter) -> list[float]:  # fmt: skip
    trainer = s1.GPTTrainer(model, lr=lr)
    examples = [s1.S1Example.of(item) for item in data]
    order = torch.Generator().manual_seed(seed + 1)
    history = []
    for _ in range(epochs):
        for index in torch.randperm(len(examples), generator=order).tolist():
            counter.check()
            history.append(trainer.step(examples[index]))
            counter.tick()
    return history


# -- the whole job --------------------------------------------------------------------------------
def finetune(models_dir: str | Path, items: Sequence[Item], params: dict[str, Any] | None = None,
             device: str = "auto", on_progress: Progress | None = None,
             should_cancel: Callable[[], bool] | None = None, base: Models | None = None) -> bytes:  # fmt: skip
    """Fine-tune the models in ``models_dir`` on ``items`` and return the packed weights (see module doc).

    ``base`` (loaded models of the same folder) lends its HuBERT, BERT and SV model to data preparation.

    Raises BadReference / BadText for unusable clips, Cancelled when ``should_cancel()`` turns true
    (checked before every step), ModelsMissing when the pretrained training files are absent.
    """
    p = FinetuneParams.from_dict(params)
    if len(items) > MAX_ITEMS:
        raise BadReference(f"{len(items)} recordings are too many to fine-tune on (at most {MAX_ITEMS})")
    paths = find_models(Path(models_dir), base.version if base is not None else None)
    dev = resolve_device(device)
    # Dropout draws from the global RNG: seed it for a repeatable run without disturbing the caller's.
    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
        torch.manual_seed(p.seed)
        generator, disc, s2_config = load_trainable_sovits(paths, dev)
        data = prepare(paths, items, generator, dev, base)
        counter = Counter(len(data) * (p.sovits_epochs + p.gpt_epochs), on_progress, should_cancel)
        s2_history = train_sovits(generator, disc, data, p.sovits_epochs, p.sovits_lr, p.seed, counter)
        del disc
        gpt_ckpt = load_t2s_checkpoint(paths.gpt)
        gpt = Text2SemanticGPT.from_checkpoint(gpt_ckpt, device=dev, dtype=torch.float32, half_weights=False)  # trained: full-precision storage
        s1_history = train_gpt(gpt, data, p.gpt_epochs, p.gpt_lr, p.seed, counter)
    meta = {
        "format": FORMAT,
        "version": generator.config.version,
        "params": dataclasses.asdict(p),
        "items": len(data),
        "sovits_steps": len(s2_history),
        "gpt_steps": len(s1_history),
        "sovits_last": dataclasses.asdict(s2_history[-1]) if s2_history else None,
        "gpt_last": s1_history[-1] if s1_history else None,
    }
    sovits_info = f"{p.sovits_epochs}epoch_{len(s2_history)}iteration"
    return pack(generator, s2_config, sovits_info, gpt, gpt_ckpt.config, f"GPT-e{p.gpt_epochs}", meta)


def pack(generator: SoVITS, s2_config: dict[str, Any], sovits_info: str, gpt: Text2SemanticGPT,
         gpt_config: dict[str, Any], gpt_info: str, meta: dict[str, Any]) -> bytes:  # fmt: skip
    """Write both files in the official formats and zip them (stored: fp16 weights do not compress)."""
    with tempfile.TemporaryDirectory(prefix="echodiary-finetune-") as tmp:
        sovits_path, gpt_path = Path(tmp) / SOVITS_NAME, Path(tmp) / GPT_NAME
        s2_config = {**s2_config, "model": {**s2_config.get("model", {}), "version": generator.config.version}}
        save_sovits_checkpoint(sovits_path, generator.state_dict(), s2_config, sovits_info, generator.config.version)
        save_t2s_checkpoint(gpt_path, gpt.state_dict(), gpt_config, gpt_info)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr(META_NAME, json.dumps(meta, indent=1))
            archive.write(sovits_path, SOVITS_NAME)
            archive.write(gpt_path, GPT_NAME)
    return buffer.getvalue()


def unpack(data: bytes) -> tuple[dict[str, Any], bytes, bytes]:
    """(meta, sovits file bytes, gpt file bytes) of a ``finetune`` result."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            meta = json.loads(archive.read(META_NAME))
            sovits, gpt = archive.read(SOVITS_NAME), archive.read(GPT_NAME)
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise EngineError(f"not EchoDiary fine-tuned weights ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise EngineError(f"fine-tuned weights of an unknown format {meta.get('format')!r} (expected {FORMAT})")
    return meta, sovits, gpt


def load_finetuned(models_dir: str | Path, data: bytes, device: str = "auto", precision: str = "auto",
                   base: Models | None = None) -> Models:  # fmt: skip
    """Models with the fine-tuned GPT and SoVITS and the base folder's HuBERT, BERT and SV model.

    Pass ``base`` (the process's loaded models) to reuse its feature extractors instead of loading them.
    """
    meta, sovits_bytes, gpt_bytes = unpack(data)
    if base is None:
        base = Models.load(find_models(Path(models_dir), meta.get("version")), device, precision)
    dev, dtype = base.device, base.dtype
    with tempfile.TemporaryDirectory(prefix="echodiary-finetuned-") as tmp:
        (Path(tmp) / SOVITS_NAME).write_bytes(sovits_bytes)
        (Path(tmp) / GPT_NAME).write_bytes(gpt_bytes)
        s2_ckpt = load_sovits_checkpoint(Path(tmp) / SOVITS_NAME)
        gpt_ckpt = load_t2s_checkpoint(Path(tmp) / GPT_NAME)
    if s2_ckpt.version != base.version:
        raise EngineError(f"these fine-tuned weights are for {s2_ckpt.version}, the loaded models are {base.version}")
    sovits = SoVITS(SoVITSConfig.from_checkpoint_config(s2_ckpt.config, s2_ckpt.version), with_posterior=False)
    sovits.load_weights(s2_ckpt.weight)
    return dataclasses.replace(
        base,
        t2s=Text2SemanticGPT.from_checkpoint(gpt_ckpt, device=dev, dtype=dtype).use_matmul(base.t2s.matmul_mode),
        max_sec=gpt_ckpt.max_sec,
        sovits=sovits.for_inference().to(device=dev, dtype=dtype),
        model_id=hashlib.sha256(data).hexdigest()[:16],
        base_model_id=base.base_model_id or base.model_id,
    )
