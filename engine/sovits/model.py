"""SoVITS (upstream ``SynthesizerTrn``): semantic tokens + phones + a reference voice -> 32 kHz audio.

Inference runs as named stages so a caller can cache and split them:

    ge      = model.timbre(refer_specs, sv_embs)          # once per voice
    prior   = model.prior(codes, phones, ge, speed)       # enc_p: mean/log-std per frame
    z       = model.latent(prior, ge, noise_scale, g)     # noise + reverse flow
    wav     = model.vocode_auto(z, ge)                    # HiFi-GAN: one call, or windows on CPU

``decode`` chains them exactly as upstream's ``SynthesizerTrn.decode`` (MODEL.md 3.3). Call the
stages under ``torch.inference_mode()`` (``decode`` and ``extract_latent`` enter it themselves) on a
model prepared with ``for_inference()``; ``forward`` is upstream's training pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.sovits.config import (
    CODEBOOK_SIZE,
    FLOW_KERNEL,
    FLOW_LAYERS,
    MRTE_DIM,
    N_FLOWS,
    POSTERIOR_LAYERS,
    REF_BINS,
    SSL_DIM,
    SV_DIM,
    SoVITSConfig,
)
from engine.sovits.flow import ResidualCouplingBlock
from engine.sovits.generator import Generator
from engine.sovits.layers import fold_weight_norm, gaussian_noise, sequence_mask
from engine.sovits.posterior_encoder import PosteriorEncoder
from engine.sovits.quantizer import ResidualVectorQuantizer
from engine.sovits.reference_encoder import MelStyleEncoder
from engine.sovits.text_encoder import TextEncoder

ENC_Q_PREFIX = "enc_q."
# On CPU the generator runs fastest over windows of about 300 frames (6 s): 15 % less time than one
# call over 1200 frames, same output to 5e-8 (ops/bench/sovits.py). On a GPU one call is best.
CPU_CHUNK_FRAMES = 300


@dataclass
class Prior:
    """Output of ``enc_p`` for one utterance: ``x`` is the encoder output (after any speed resampling)."""

    x: Tensor
    m_p: Tensor
    logs_p: Tensor
    mask: Tensor | None


class SoVITS(nn.Module):
    def __init__(self, config: SoVITSConfig, with_posterior: bool = True) -> None:
        super().__init__()
        c = self.config = config
        self.enc_p = TextEncoder(c)
        self.dec = Generator(c)
        if with_posterior:
            self.enc_q = PosteriorEncoder(c.spec_channels, c.inter_channels, c.hidden_channels, FLOW_KERNEL, 1,
                                          POSTERIOR_LAYERS, gin_channels=c.gin_channels)  # fmt: skip
        self.flow = ResidualCouplingBlock(c.inter_channels, c.hidden_channels, FLOW_KERNEL, 1, FLOW_LAYERS, N_FLOWS,
                                          gin_channels=c.gin_channels)  # fmt: skip
        self.ref_enc = MelStyleEncoder(REF_BINS, c.gin_channels)
        stride = 2 if c.semantic_frame_rate == "25hz" else 1
        self.ssl_proj = nn.Conv1d(SSL_DIM, SSL_DIM, stride, stride=stride)
        self.quantizer = ResidualVectorQuantizer(SSL_DIM, CODEBOOK_SIZE, n_q=1)
        if c.is_pro:
            self.sv_emb = nn.Linear(SV_DIM, c.gin_channels)
            self.ge_to512 = nn.Linear(c.gin_channels, MRTE_DIM)
            self.prelu = nn.PReLU(num_parameters=c.gin_channels)

    @property
    def has_posterior(self) -> bool:
        return hasattr(self, "enc_q")

    @property
    def dtype(self) -> torch.dtype:
        return self.ssl_proj.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.ssl_proj.weight.device

    # -- loading -------------------------------------------------------------------------------
    def load_weights(self, state_dict: dict[str, Tensor]) -> None:
        """Strict loading, except that ``enc_q.*`` may be absent (fine-tuned files drop it).

        Weights arrive in any float dtype (files store fp16) and are copied into our parameters.
        """
        result = self.load_state_dict(state_dict, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith(ENC_Q_PREFIX)]
        unexpected = list(result.unexpected_keys)
        if not self.has_posterior:
            unexpected = [k for k in unexpected if not k.startswith(ENC_Q_PREFIX)]
        if missing or unexpected:
            raise ValueError(
                f"SoVITS {self.config.version} weights do not match the model: "
                f"missing {missing[:8]}{'...' if len(missing) > 8 else ''}, "
                f"unexpected {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}"
            )

    def for_inference(self) -> SoVITS:
        """eval mode, no gradients, weight norm folded once."""
        self.eval().requires_grad_(False)
        fold_weight_norm(self)
        return self

    # -- semantic codes ---------------------------------------------------------------------------
    @torch.no_grad()  # not inference_mode: fine-tuning trains on these codes, and inference tensors cannot enter autograd
    def extract_latent(self, ssl: Tensor) -> Tensor:
        """HuBERT features [B, 768, T] (50 Hz) -> semantic codes [B, 1, T // 2] (25 Hz)."""
        codes, _ = self.quantizer.encode(self.ssl_proj(ssl.to(self.device, self.dtype)))
        return codes.transpose(0, 1)

    def dequantize(self, codes: Tensor) -> Tensor:
        """codes [B, 1, N] -> SSL-rate features [B, 768, 2N] (nearest-neighbour x2 for 25 Hz)."""
        quantized = self.quantizer.decode(codes.to(self.device).transpose(0, 1))
        if self.config.semantic_frame_rate == "25hz":
            quantized = F.interpolate(quantized, size=quantized.shape[-1] * 2, mode="nearest")
        return quantized

    # -- timbre ----------------------------------------------------------------------------------
    def timbre(self, refer: Tensor | list[Tensor] | None, sv_emb: Tensor | list[Tensor] | None = None) -> Tensor | None:
        """Reference spectrogram(s) [1, 1025, R] (+ Pro speaker vectors [1, 20480]) -> ge [1, gin, 1].

        A list of references gives the mean of their vectors, taken after the Pro PReLU.
        """
        if refer is None:
            return None
        if isinstance(refer, (list, tuple)):
            if self.config.is_pro:
                if not isinstance(sv_emb, (list, tuple)) or len(sv_emb) != len(refer):
                    raise ValueError("v2Pro/v2ProPlus need one speaker vector per reference spectrogram")
                ges = [self._timbre_one(r, s) for r, s in zip(refer, sv_emb, strict=True)]
            else:
                ges = [self._timbre_one(r, None) for r in refer]
            return torch.stack(ges, 0).mean(0)
        if isinstance(sv_emb, (list, tuple)):
            raise ValueError("a single reference spectrogram takes a single speaker vector")
        return self._timbre_one(refer, sv_emb)

    def reference_embedding(self, refer: Tensor) -> Tensor:
        """The raw ``ref_enc`` output [B, gin, 1] of one spectrogram (all frames valid)."""
        return self.ref_enc(refer[:, :REF_BINS].to(self.device, self.dtype))

    def _timbre_one(self, refer: Tensor, sv_emb: Tensor | None) -> Tensor:
        ge = self.reference_embedding(refer)
        if self.config.is_pro:
            if sv_emb is None:
                raise ValueError(f"SoVITS {self.config.version} needs the speaker-verification vector (sv_emb)")
            ge = self.prelu(ge + self.sv_emb(sv_emb.to(ge.device, ge.dtype)).unsqueeze(-1))
        return ge

    def timbre_for_text(self, ge: Tensor | None) -> Tensor | None:
        """The timbre vector MRTE adds (width 512): ge itself for v2, ``ge_to512(ge)`` for Pro."""
        if ge is None or not self.config.is_pro:
            return ge
        return self.ge_to512(ge.transpose(1, 2)).transpose(1, 2)

    # -- prior, latent, waveform --------------------------------------------------------------------
    def prior(self, codes: Tensor, phones: Tensor, ge: Tensor | None, speed: float = 1.0) -> Prior:
        """codes [1, 1, N], phones [1, P] -> frame statistics (2N frames, or int(2N/speed)+1)."""
        quantized = self.dequantize(codes)
        ge_text = self.timbre_for_text(ge)
        x, m_p, logs_p, mask = self.enc_p(quantized, None, phones.to(self.device), None, ge_text, speed)
        return Prior(x, m_p, logs_p, mask)

    def latent(self, prior: Prior, ge: Tensor | None, noise_scale: float = 0.5,
               generator: torch.Generator | None = None) -> Tensor:  # fmt: skip
        """Sample z_p = m_p + eps * exp(logs_p) * noise_scale and run the flow backwards -> z."""
        z_p = prior.m_p
        if noise_scale != 0:
            z_p = z_p + gaussian_noise(prior.m_p, generator) * torch.exp(prior.logs_p) * noise_scale
        z = self.flow(z_p, prior.mask, g=ge, reverse=True)
        return z if prior.mask is None else z * prior.mask

    def vocode(self, z: Tensor, ge: Tensor | None) -> Tensor:
        """z [1, inter, T] -> wav [1, 1, T * 640] in one generator call."""
        return self.dec(z, g=ge)

    def vocode_windows(self, z: Tensor, ge: Tensor | None, chunk_frames: int | Literal["auto"] | None = "auto",
                       overlap_frames: int = 16, first_frames: int | None = None,
                       start_frame: int = 0) -> Iterator[Tensor]:  # fmt: skip
        """The generator over consecutive windows of ``z``, each wav [1, 1, frames * 640] yielded when done.

        Windows hold ``chunk_frames`` (``"auto"``: ``CPU_CHUNK_FRAMES`` on CPU, one window elsewhere;
        ``None``: one window) plus ``overlap_frames`` of context on each side, cut away again; the
        first holds ``first_frames`` when given (a short first window is how a stream starts playing
        early). Where the overlap covers the generator's receptive field (13 frames for the official
        configs, see ``receptive_field_frames``) the pieces joined equal one call up to float rounding.
        Shorter convolutions keep their activations in cache, which is faster on CPU. ``start_frame``
        skips the waveform before that frame (its left context is still used).
        """
        total = z.shape[-1]
        if chunk_frames == "auto":
            chunk_frames = CPU_CHUNK_FRAMES if z.device.type == "cpu" else None
        chunk = chunk_frames or max(total, 1)
        first = min(first_frames or chunk, chunk)
        if start_frame == 0 and total <= first + overlap_frames:
            yield self.vocode(z, ge)
            return
        hop = self.config.samples_per_frame
        start = start_frame
        while start < total:
            stop = min(start + (first if start == start_frame else chunk), total)
            lo, hi = max(0, start - overlap_frames), min(total, stop + overlap_frames)
            wav = self.dec(z[..., lo:hi], g=ge)
            yield wav[..., (start - lo) * hop : (stop - lo) * hop]
            start = stop

    def vocode_chunked(self, z: Tensor, ge: Tensor | None, chunk_frames: int = 96, overlap_frames: int = 16) -> Tensor:
        """:meth:`vocode_windows` of ``chunk_frames`` joined into one waveform."""
        return self.vocode_auto(z, ge, chunk_frames, overlap_frames)

    def receptive_field_frames(self) -> int:
        """Frames of ``z`` on each side of an output frame that can change it (an upper bound)."""
        c = self.config
        reach = max(
            (k - 1) // 2 * (sum(d) + len(d))  # dilated convs then plain convs, samples at the stage's rate
            for k, d in zip(c.resblock_kernel_sizes, c.resblock_dilation_sizes, strict=True)
        )
        half = 3  # conv_post, kernel 7, in output samples
        for rate, kernel in reversed(list(zip(c.upsample_rates, c.upsample_kernel_sizes, strict=True))):
            half = -(-(half + reach + kernel) // rate)  # resblocks, then back through the transposed conv
        return half + 3  # conv_pre, kernel 7

    def vocode_auto(self, z: Tensor, ge: Tensor | None, chunk_frames: int | Literal["auto"] | None = "auto",
                    overlap_frames: int = 16) -> Tensor:  # fmt: skip
        """:meth:`vocode_windows` joined: ``"auto"`` windows on CPU, one call elsewhere; ``None``: one call."""
        pieces = list(self.vocode_windows(z, ge, chunk_frames, overlap_frames))
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=-1)

    # -- the whole decode ---------------------------------------------------------------------------
    @torch.inference_mode()
    def decode(
        self,
        codes: Tensor,
        phones: Tensor,
        refer: Tensor | list[Tensor] | None,
        noise_scale: float = 0.5,
        speed: float = 1.0,
        sv_emb: Tensor | list[Tensor] | None = None,
        generator: torch.Generator | None = None,
        ge: Tensor | None = None,
        chunk_frames: int | Literal["auto"] | None = "auto",
        overlap_frames: int = 16,
    ) -> Tensor:
        """codes [1, 1, N], phones [1, P], refer [1, 1025, R] (or a list) -> wav [1, 1, frames * 640].

        As upstream's ``SynthesizerTrn.decode``; the noise comes from ``generator`` (a CPU generator
        seeded like upstream's ``torch.manual_seed`` reproduces its draw). ``ge`` skips the timbre step
        (a cached voice). ``chunk_frames`` picks how the generator runs (see ``vocode_auto``).
        """
        if ge is None:
            ge = self.timbre(refer, sv_emb)
        z = self.latent(self.prior(codes, phones, ge, speed), ge, noise_scale, generator)
        return self.vocode_auto(z, ge, chunk_frames, overlap_frames)

    # -- training ------------------------------------------------------------------------------------
    def forward(
        self,
        ssl: Tensor,
        spec: Tensor,
        spec_lengths: Tensor,
        phones: Tensor,
        phones_lengths: Tensor,
        sv_emb: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> TrainOutput:
        """Upstream's training forward: reconstruct random ``segment_frames`` slices through enc_q."""
        if not self.has_posterior:
            raise RuntimeError("training needs the posterior encoder: build SoVITS(config, with_posterior=True)")
        mask = sequence_mask(spec_lengths, spec.shape[2]).unsqueeze(1).to(spec.dtype)
        ge = self.ref_enc(spec[:, :REF_BINS] * mask, mask)
        if self.config.is_pro:
            ge = self.prelu(ge + self.sv_emb(sv_emb).unsqueeze(-1))
        with torch.no_grad():  # ssl_proj and the codebook are frozen
            codes, quantized = self.quantizer.encode(self.ssl_proj(ssl))
        if self.config.semantic_frame_rate == "25hz":
            quantized = F.interpolate(quantized, size=quantized.shape[-1] * 2, mode="nearest")
        phones_mask = sequence_mask(phones_lengths, phones.shape[1]).unsqueeze(1).to(spec.dtype)
        ssl_mask = sequence_mask(spec_lengths, quantized.shape[-1]).unsqueeze(1).to(spec.dtype)
        _, m_p, logs_p, _ = self.enc_p(quantized, ssl_mask, phones, phones_mask, self.timbre_for_text(ge))
        z, m_q, logs_q = self.enc_q(spec, mask, g=ge, generator=generator)
        z_p = self.flow(z, mask, g=ge)
        z_slice, slice_starts = random_slices(z, spec_lengths, self.config.segment_frames, generator)
        wav = self.dec(z_slice, g=ge)
        return TrainOutput(wav, slice_starts, mask, z, z_p, m_p, logs_p, m_q, logs_q, codes.transpose(0, 1))


@dataclass
class TrainOutput:
    wav: Tensor  # [B, 1, segment_frames * 640]
    slice_starts: Tensor  # [B] frame index of each slice
    mask: Tensor  # [B, 1, T]
    z: Tensor
    z_p: Tensor
    m_p: Tensor
    logs_p: Tensor
    m_q: Tensor
    logs_q: Tensor
    codes: Tensor


def random_slices(x: Tensor, lengths: Tensor, size: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """One random window of ``size`` frames per item, inside its valid length."""
    b = x.shape[0]
    device = generator.device if generator is not None else torch.device("cpu")
    max_start = (lengths - size + 1).clamp(min=1).to(device)
    starts = (torch.rand(b, generator=generator, device=device) * max_start).long().cpu()
    windows = [x[i, :, s : s + size] for i, s in enumerate(starts.tolist())]
    windows = [F.pad(w, (0, size - w.shape[-1])) for w in windows]
    return torch.stack(windows), starts
