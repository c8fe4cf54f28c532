"""ERes2NetV2 speaker-verification model (v2Pro / v2ProPlus timbre input), loaded from upstream's bare .ckpt.

Upstream builds ``ERes2NetV2(baseWidth=24, scale=4, expansion=4)`` and uses ``forward3``: the output of
the ``fuse34`` stage flattened over channel x frequency and averaged over time, 20480 values for the
official model (MODEL.md 4.3). Module names equal the state-dict keys of
``pretrained_models/sv/pretrained_eres2netv2w24s4ep4.ckpt`` (manifests/sv_eres2netv2.json).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from engine import audio


@dataclass(frozen=True)
class SpeakerConfig:
    m_channels: int = 64  # 8 in the tiny fixture
    embedding_size: int = 192  # the pooling head's width (unused by GPT-SoVITS); 32 in the tiny fixture
    feat_dim: int = audio.FBANK_BINS
    num_blocks: tuple[int, int, int, int] = (3, 4, 6, 3)
    base_width: int = 24
    scale: int = 4
    expansion: int = 4

    @property
    def sv_dim(self) -> int:
        """Width of the ``forward3`` vector: fuse34 channels x the frequency bins left after 3 stride-2 stages."""
        return self.m_channels * 8 * self.expansion * math.ceil(self.feat_dim / 8)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> SpeakerConfig:
        return cls(m_channels=state["conv1.weight"].shape[0], embedding_size=state["seg_1.weight"].shape[0])

    @classmethod
    def of_size(cls, size: str) -> SpeakerConfig:
        if size == "full":
            return cls()
        if size == "tiny":
            return cls(m_channels=8, embedding_size=32)
        raise ValueError(f"unknown model size {size!r}; expected 'tiny' or 'full'")


class CappedReLU(nn.Hardtanh):
    """ReLU that saturates at 20: upstream's ERes2Net blocks name a ``Hardtanh(0, 20)`` "ReLU"."""

    def __init__(self) -> None:
        super().__init__(0.0, 20.0)


class AFF(nn.Module):
    """Attentional feature fusion: a learned per-element mix of two equally shaped maps."""

    def __init__(self, channels: int, r: int = 4) -> None:
        super().__init__()
        inner = channels // r
        self.local_att = nn.Sequential(
            nn.Conv2d(channels * 2, inner, kernel_size=1),
            nn.BatchNorm2d(inner),
            nn.SiLU(),
            nn.Conv2d(inner, channels, kernel_size=1),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gate = 1.0 + torch.tanh(self.local_att(torch.cat((x, y), dim=1)))  # in (0, 2)
        return x * gate + y * (2.0 - gate)


class Res2Block(nn.Module):
    """Bottleneck whose 3x3 stage runs on ``scale`` channel groups, each fed the previous group's output.

    Stages 1-2 add the previous group (``fuse=False``), stages 3-4 mix it in with an :class:`AFF`.
    """

    def __init__(self, cfg: SpeakerConfig, in_planes: int, planes: int, stride: int, fuse: bool) -> None:
        super().__init__()
        width = int(math.floor(planes * cfg.base_width / 64.0))
        out_planes = planes * cfg.expansion
        self.width = width
        self.conv1 = nn.Conv2d(in_planes, width * cfg.scale, kernel_size=1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(width * cfg.scale)
        self.convs = nn.ModuleList(
            nn.Conv2d(width, width, kernel_size=3, padding=1, bias=False) for _ in range(cfg.scale)
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(cfg.scale))
        if fuse:
            self.fuse_models = nn.ModuleList(AFF(width) for _ in range(cfg.scale - 1))
        self.relu = CappedReLU()
        self.conv3 = nn.Conv2d(width * cfg.scale, out_planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = nn.Sequential()  # identity; no keys in the file
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = torch.split(self.relu(self.bn1(self.conv1(x))), self.width, dim=1)
        outs = []
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            if i == 0:
                sp = groups[0]
            elif hasattr(self, "fuse_models"):
                sp = self.fuse_models[i - 1](sp, groups[i])
            else:
                sp = sp + groups[i]
            sp = self.relu(bn(conv(sp)))
            outs.append(sp)
        out = self.bn3(self.conv3(torch.cat(outs, dim=1)))
        return self.relu(out + self.shortcut(x))


class ERes2NetV2(nn.Module):
    def __init__(self, cfg: SpeakerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        m = cfg.m_channels
        self.conv1 = nn.Conv2d(1, m, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m)
        in_planes = m
        stages = []
        for i, (planes, blocks) in enumerate(zip((m, 2 * m, 4 * m, 8 * m), cfg.num_blocks, strict=True)):
            layer = []
            for j in range(blocks):
                stride = 2 if i > 0 and j == 0 else 1
                layer.append(Res2Block(cfg, in_planes, planes, stride, fuse=i >= 2))
                in_planes = planes * cfg.expansion
            stages.append(nn.Sequential(*layer))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.layer3_ds = nn.Conv2d(
            4 * m * cfg.expansion, 8 * m * cfg.expansion, kernel_size=3, stride=2, padding=1, bias=False
        )
        self.fuse34 = AFF(8 * m * cfg.expansion)
        stats_dim = int(cfg.feat_dim / 8) * m * 8 * cfg.expansion
        self.seg_1 = nn.Linear(stats_dim * 2, cfg.embedding_size)  # after mean+std pooling

    def fused_map(self, feats: torch.Tensor) -> torch.Tensor:
        """fbank [B, frames, bins] -> fuse34 output [B, C, bins/8, frames/8]."""
        x = feats.transpose(1, 2).unsqueeze(1)
        x = F.relu(self.bn1(self.conv1(x)))
        out3 = self.layer3(self.layer2(self.layer1(x)))
        out4 = self.layer4(out3)
        return self.fuse34(out4, self.layer3_ds(out3))

    def forward3(self, feats: torch.Tensor) -> torch.Tensor:
        """The embedding GPT-SoVITS uses: [B, C * bins/8], time-averaged."""
        return self.fused_map(feats).flatten(1, 2).mean(-1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """The verification embedding (mean+std pooling, linear head); upstream's Pro models do not use it."""
        fused = self.fused_map(feats)
        mean = fused.mean(-1).flatten(1)
        std = torch.sqrt(torch.var(fused, dim=-1) + 1e-8).flatten(1)
        return self.seg_1(torch.cat((mean, std), dim=1))


class SpeakerEncoder:
    """16 kHz waveform(s) -> the ``sv_emb`` vectors v2Pro / v2ProPlus decode with."""

    def __init__(self, model: ERes2NetV2) -> None:
        self.model = model.eval()

    @classmethod
    def load(
        cls, path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> SpeakerEncoder:
        return cls(load_speaker_model(path).to(device=device, dtype=dtype))

    @property
    def device(self) -> torch.device:
        return self.model.conv1.weight.device

    @torch.no_grad()  # not inference_mode: the outputs also feed fine-tuning, where autograd must accept them
    def embed(self, wav16k: torch.Tensor) -> torch.Tensor:
        """[T] or [B, T] at 16 kHz -> [B, sv_dim]. fbank runs in float32 (Kaldi's log needs the range)."""
        wav = wav16k.reshape(-1, wav16k.shape[-1]).to(self.device, torch.float32)
        feats = audio.fbank(wav)
        return self.model.forward3(feats.to(self.model.conv1.weight.dtype))


def load_speaker_model(path: str | os.PathLike) -> ERes2NetV2:
    """Upstream's bare state dict, read without running pickled code, loaded strictly."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "conv1.weight" not in state:
        raise ValueError(f"{path} is not an ERes2NetV2 state dict (no 'conv1.weight')")
    model = ERes2NetV2(SpeakerConfig.from_state_dict(state))
    model.load_state_dict(state, strict=True)
    return model.eval()


def write_random_speaker(path: str | os.PathLike, size: str = "tiny", seed: int = 0) -> Path:
    """A seeded random model saved as upstream's file is: a bare float32 state dict."""
    cfg = SpeakerConfig.of_size(size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ERes2NetV2(cfg)
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):  # plausible running statistics, not the 0/1 defaults
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path
