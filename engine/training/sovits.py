"""SoVITS (s2) fine-tuning as upstream's ``s2_train.py`` (MODEL.md 3.6).

Generator and discriminator take turns on each batch: LSGAN for the discriminator; for the generator
adversarial + feature matching + 45 x L1(log-mel) + commitment (``kl_ssl``) + KL(posterior vs prior).
AdamW(1e-4, betas (0.8, 0.99), eps 1e-9) for both, the text side of ``enc_p`` at 0.4 x lr,
ExponentialLR(0.999875) per epoch, ``ssl_proj`` and the codebook frozen, fp16 autocast on GPUs.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine import audio
from engine.sovits.discriminator import MultiPeriodDiscriminator
from engine.sovits.model import SoVITS, TrainOutput
from engine.training.data import TrainItem

LR, BETAS, EPS = 1e-4, (0.8, 0.99), 1e-9
TEXT_LR_RATE = 0.4  # upstream's text_low_lr_rate
LR_DECAY = 0.999875  # per epoch
C_MEL, C_KL = 45.0, 1.0
TEXT_PREFIXES = ("enc_p.text_embedding.", "enc_p.encoder_text.", "enc_p.mrte.")


@dataclass
class S2Batch:
    ssl: Tensor  # [B, 768, T]
    spec: Tensor  # [B, 1025, T]
    spec_lengths: Tensor  # [B]
    wav: Tensor  # [B, 1, T * 640]
    phones: Tensor  # [B, P]
    phone_lengths: Tensor  # [B]
    sv_emb: Tensor | None  # [B, 20480]

    def to(self, device: torch.device) -> S2Batch:
        sv = None if self.sv_emb is None else self.sv_emb.to(device)
        return S2Batch(self.ssl.to(device), self.spec.to(device), self.spec_lengths.to(device), self.wav.to(device),
                       self.phones.to(device), self.phone_lengths.to(device), sv)  # fmt: skip


@dataclass
class S2Losses:
    discriminator: float
    generator: float  # the whole generator objective
    mel: float  # 45 x L1 of log-mels
    kl: float
    kl_ssl: float
    feature_matching: float
    adversarial: float


def _pad_to(x: Tensor, length: int) -> Tensor:
    return F.pad(x, (0, length - x.shape[-1]))


def collate(items: Sequence[TrainItem]) -> S2Batch:
    """Pad to a shared even frame count (upstream pads to 2 * (max // 2 + 1) so the 25 Hz codes fit)."""
    frames = max(it.spec.shape[-1] for it in items)
    frames = 2 * (frames // 2 + 1)
    phones = max(it.phone_ids.numel() for it in items)
    sv = [it.sv_emb for it in items]
    return S2Batch(
        ssl=torch.stack([_pad_to(it.ssl, frames) for it in items]),
        spec=torch.stack([_pad_to(it.spec, frames) for it in items]),
        spec_lengths=torch.tensor([it.spec.shape[-1] for it in items]),
        wav=torch.stack([_pad_to(it.wav, frames * audio.HOP) for it in items])[:, None],
        phones=torch.stack([_pad_to(it.phone_ids, phones) for it in items]),
        phone_lengths=torch.tensor([it.phone_ids.numel() for it in items]),
        sv_emb=None if any(s is None for s in sv) else torch.stack(sv),  # type: ignore[misc]
    )


def take_slices(x: Tensor, starts: Tensor, size: int) -> Tensor:
    """``x[i, :, starts[i] : starts[i] + size]`` for each row, zero-padded past the end."""
    windows = [x[i, :, s : s + size] for i, s in enumerate(starts.tolist())]
    return torch.stack([_pad_to(w, size) for w in windows])


# -- losses (VITS / HiFi-GAN) -----------------------------------------------------------------------
def discriminator_loss(real: Sequence[Tensor], fake: Sequence[Tensor]) -> Tensor:
    """LSGAN: real scores toward 1, generated ones toward 0, summed over sub-discriminators."""
    return sum(((1 - r.float()) ** 2).mean() + (f.float() ** 2).mean() for r, f in zip(real, fake, strict=True))  # type: ignore[return-value]


def adversarial_loss(fake: Sequence[Tensor]) -> Tensor:
    return sum(((1 - f.float()) ** 2).mean() for f in fake)  # type: ignore[return-value]


def feature_matching_loss(fmap_real: Sequence[Sequence[Tensor]], fmap_fake: Sequence[Sequence[Tensor]]) -> Tensor:
    """2 x the mean L1 between the discriminator's activations on real and generated audio."""
    total = sum(
        torch.mean(torch.abs(r.float().detach() - g.float()))
        for dr, dg in zip(fmap_real, fmap_fake, strict=True)
        for r, g in zip(dr, dg, strict=True)
    )
    return total * 2  # type: ignore[return-value]


def kl_loss(z_p: Tensor, logs_q: Tensor, m_p: Tensor, logs_p: Tensor, mask: Tensor) -> Tensor:
    """KL between the flowed posterior sample and the text prior, per valid frame and channel."""
    z_p, logs_q, m_p, logs_p, mask = (t.float() for t in (z_p, logs_q, m_p, logs_p, mask))
    kl = logs_p - logs_q - 0.5 + 0.5 * (z_p - m_p) ** 2 * torch.exp(-2.0 * logs_p)
    return torch.sum(kl * mask) / torch.sum(mask)


@torch.no_grad()
def commitment_loss(model: SoVITS, ssl: Tensor) -> Tensor:
    """Upstream's ``kl_ssl``: MSE between the projected features and their codewords. With ssl_proj and
    the codebook frozen it carries no gradient; it is kept so the logged objective matches upstream's."""
    projected = model.ssl_proj(ssl)
    _, quantized = model.quantizer.encode(projected)
    return F.mse_loss(quantized.float(), projected.float())


# -- optimisers -----------------------------------------------------------------------------------
def freeze_quantizer(model: SoVITS) -> None:
    model.ssl_proj.requires_grad_(False)
    model.quantizer.requires_grad_(False)


def generator_optimizer(model: SoVITS, lr: float) -> torch.optim.AdamW:
    """Two groups: the text side of enc_p learns at 0.4 x lr, everything else trainable at lr."""
    text, rest = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (text if name.startswith(TEXT_PREFIXES) else rest).append(param)
    groups = [{"params": rest, "lr": lr}, {"params": text, "lr": lr * TEXT_LR_RATE}]
    return torch.optim.AdamW(groups, lr=lr, betas=BETAS, eps=EPS)


def discriminator_channel_divisor(state: dict[str, Tensor]) -> int:
    """1 for upstream's shapes; tiny test discriminators are narrower (16 -> 16 / divisor channels)."""
    width = state["discriminators.0.convs.0.weight_v"].shape[0]
    return max(1, 16 // width)


def load_discriminator(state: dict[str, Tensor], version: str) -> MultiPeriodDiscriminator:
    disc = MultiPeriodDiscriminator(version, discriminator_channel_divisor(state))
    disc.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return disc


# -- training -------------------------------------------------------------------------------------
class SoVITSTrainer:
    """One generator + discriminator pair; ``step`` is one upstream iteration on one batch."""

    def __init__(self, generator: SoVITS, discriminator: nn.Module, lr: float = LR, seed: int = 0) -> None:
        if not generator.has_posterior:
            raise ValueError("SoVITS fine-tuning needs the pretrained file with its posterior encoder (enc_q)")
        self.g, self.d = generator, discriminator
        freeze_quantizer(generator)
        self.opt_g = generator_optimizer(generator, lr)
        self.opt_d = torch.optim.AdamW(discriminator.parameters(), lr=lr, betas=BETAS, eps=EPS)
        self.sched_g = torch.optim.lr_scheduler.ExponentialLR(self.opt_g, LR_DECAY)
        self.sched_d = torch.optim.lr_scheduler.ExponentialLR(self.opt_d, LR_DECAY)
        self.device = generator.device
        self.cuda = self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.cuda)
        self.rng = torch.Generator(self.device).manual_seed(seed)  # posterior noise and slice positions

    def autocast(self) -> AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.float16) if self.cuda else nullcontext()

    def train_mode(self) -> None:
        self.g.train()
        self.d.train()
        self.g.ssl_proj.eval()
        self.g.quantizer.eval()

    def forward(self, batch: S2Batch, rng: torch.Generator) -> tuple[TrainOutput, Tensor, Tensor]:
        """Generator forward; returns its output, the real audio slices and their log-mels."""
        out = self.g(batch.ssl, batch.spec, batch.spec_lengths, batch.phones, batch.phone_lengths,
                     batch.sv_emb, generator=rng)  # fmt: skip
        frames = self.g.config.segment_frames
        real = take_slices(batch.wav, out.slice_starts * audio.HOP, frames * audio.HOP)
        with torch.autocast("cuda", enabled=False):
            real_mel = take_slices(audio.spec_to_mel(batch.spec.float()), out.slice_starts, frames)
        return out, real, real_mel

    def reconstruction(self, out: TrainOutput, real_mel: Tensor) -> tuple[Tensor, Tensor]:
        # log-mels and the KL in float32 even under autocast: fp16 loses the 1e-5 mel floor and exp(-2 logs_p)
        with torch.autocast("cuda", enabled=False):
            fake_mel = audio.mel_spectrogram(out.wav.squeeze(1).float())
            mel = F.l1_loss(fake_mel, real_mel.float()) * C_MEL
            kl = kl_loss(out.z_p, out.logs_q, out.m_p, out.logs_p, out.mask) * C_KL
        return mel, kl

    def step(self, batch: S2Batch) -> S2Losses:
        self.train_mode()
        batch = batch.to(self.device)
        with self.autocast():
            out, real, real_mel = self.forward(batch, self.rng)
            kl_ssl = commitment_loss(self.g, batch.ssl)
            scores_real, scores_fake, _, _ = self.d(real, out.wav.detach())
            loss_d = discriminator_loss(scores_real, scores_fake)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        self.scaler.step(self.opt_d)

        with self.autocast():
            _, scores_fake, fmap_real, fmap_fake = self.d(real, out.wav)
            mel, kl = self.reconstruction(out, real_mel)
            fm = feature_matching_loss(fmap_real, fmap_fake)
            adv = adversarial_loss(scores_fake)
            loss_g = adv + fm + mel + kl_ssl + kl
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.opt_g)
        self.scaler.update()
        values = (loss_d, loss_g, mel, kl, kl_ssl, fm, adv)
        return S2Losses(*(float(v.detach()) for v in values))

    def end_epoch(self) -> None:
        self.sched_g.step()
        self.sched_d.step()

    @torch.no_grad()
    def evaluate(self, batch: S2Batch, seed: int = 0) -> float:
        """Mel + KL reconstruction loss with dropout off and fixed noise/slices: comparable across steps."""
        was_training = self.g.training
        self.g.eval()
        out, _, real_mel = self.forward(batch.to(self.device), torch.Generator(self.device).manual_seed(seed))
        mel, kl = self.reconstruction(out, real_mel)
        self.g.train(was_training)
        return float(mel + kl)
