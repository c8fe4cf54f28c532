"""GPT (s1) fine-tuning as upstream's ``t2s_lightning_module`` (MODEL.md 2.6), without the DPO term.

One sequence per item: ``[phones (+BERT) | semantic tokens]`` with the inference-time attention
layout (text bidirectional, audio causal over text + earlier audio). Audio position i predicts token
i + 1 and the last one predicts EOS; the first token is never a target, exactly as upstream's
``pad_y_eos`` shifts it. Cross-entropy with reduction ``sum`` (longer clips weigh more).

Upstream steps ScaledAdam (peak lr 0.01 after a 2000-step warm-up) every 4 batches; a few epochs of
a household's clips never leave that warm-up, so we use AdamW at a small constant rate instead, with
upstream's betas (0.9, 0.95) and gradient clipping at 1.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.t2s import Text2SemanticGPT, prefix_mask
from engine.training.data import TrainItem

LR, BETAS, GRAD_CLIP = 1e-4, (0.9, 0.95), 1.0


class NoCache:
    """Stands in for the KV cache during training: the whole sequence runs at once and nothing is kept
    (the inference cache writes into one shared buffer in place, which autograd cannot differentiate)."""

    def append(self, layer: int, kv: Tensor) -> tuple[Tensor, Tensor]:
        del layer
        return kv[0], kv[1]

    def advance(self, steps: int) -> None:
        del steps


@dataclass
class S1Example:
    phones: Tensor  # [1, P]
    bert: Tensor  # [1, 1024, P]
    codes: Tensor  # [1, N]

    @classmethod
    def of(cls, item: TrainItem) -> S1Example:
        return cls(item.phone_ids[None], item.bert[None], item.codes[None])


def sequence_loss(model: Text2SemanticGPT, ex: S1Example) -> Tensor:
    """Summed cross-entropy of [codes[1:], EOS] given phones + BERT and codes."""
    device = model.ar_predict_layer.weight.device
    phones, bert, codes = ex.phones.to(device), ex.bert.to(device), ex.codes.to(device)
    text = model.embed_text(phones, bert)
    audio = model.embed_audio(codes)
    mask = prefix_mask(text.shape[1], audio.shape[1], device)
    hidden = model(torch.cat([text, audio], dim=1), NoCache(), mask)  # type: ignore[arg-type]
    logits = model.logits(hidden[:, text.shape[1] :]).float()
    targets = F.pad(codes[:, 1:], (0, 1), value=model.config.eos)
    return F.cross_entropy(logits.transpose(1, 2), targets, reduction="sum")


class GPTTrainer:
    def __init__(self, model: Text2SemanticGPT, lr: float = LR) -> None:
        self.model = model
        self.model.requires_grad_(True)
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=BETAS)
        self.cuda = model.ar_predict_layer.weight.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.cuda)

    def autocast(self) -> AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.float16) if self.cuda else nullcontext()

    def step(self, ex: S1Example) -> float:
        self.model.train()
        with self.autocast():
            loss = sequence_loss(self.model, ex)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), GRAD_CLIP)
        self.scaler.step(self.opt)
        self.scaler.update()
        return float(loss.detach())

    @torch.no_grad()
    def evaluate(self, examples: Sequence[S1Example]) -> float:
        self.model.eval()
        return float(sum(sequence_loss(self.model, ex) for ex in examples))
