"""chinese-hubert-base through transformers, from a local folder only (MODEL.md 4.1).

Two paths, as upstream has them: the TTS prompt path feeds the raw 16 kHz waveform plus 0.6 s of
silence; the ``get_content`` path (data preparation helpers) normalises the waveform first, as
``Wav2Vec2FeatureExtractor`` does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

from engine.errors import ModelsMissing
from engine.features.loading import quiet_transformers, require_folder

SSL_DIM = 768  # hidden width of HuBERT base; SoVITS's ssl_proj is built for it
# upstream appends int(32000 * 0.3) zeros to the 16 kHz prompt: 0.6 s of silence, not 0.3 s
PROMPT_TAIL_SAMPLES = 9600
NORM_EPS = 1e-7  # Wav2Vec2FeatureExtractor's zero-mean unit-variance epsilon


class HubertFeatures:
    def __init__(self, model: HubertModel, normalize: bool = True) -> None:
        self.model = model.eval()
        self.normalize = normalize  # the folder's preprocessor_config "do_normalize", for content_features

    @classmethod
    def load(
        cls, folder: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> HubertFeatures:
        folder = require_folder(folder, "config.json", what="HuBERT (chinese-hubert-base)")
        with quiet_transformers():
            model, info = HubertModel.from_pretrained(
                folder, local_files_only=True, torch_dtype=dtype, output_loading_info=True
            )
        # transformers fills missing weights with random values; only the training-time mask embedding may be absent
        missing = [key for key in info["missing_keys"] if key != "masked_spec_embed"]
        if missing or info["mismatched_keys"]:
            raise ModelsMissing(
                f"HuBERT weights in {folder} do not fit its config: missing {missing[:5]}, "
                f"mismatched {info['mismatched_keys'][:5]}"
            )
        preprocessor = folder / "preprocessor_config.json"
        normalize = json.loads(preprocessor.read_text()).get("do_normalize", True) if preprocessor.exists() else True
        return cls(model.to(device), normalize)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @torch.no_grad()  # not inference_mode: the outputs also feed fine-tuning, where autograd must accept them
    def _forward(self, wav: torch.Tensor) -> torch.Tensor:
        wav = wav.reshape(1, -1).to(self.device, self.model.dtype)
        return self.model(wav).last_hidden_state.transpose(1, 2)

    def prompt_features(self, wav16k: torch.Tensor) -> torch.Tensor:
        """Reference clip -> [1, 768, T] as ``TTS._set_prompt_semantic``: raw waveform, silence appended."""
        wav = wav16k.reshape(-1)
        return self._forward(torch.cat([wav, wav.new_zeros(PROMPT_TAIL_SAMPLES)]))

    def content_features(self, wav16k: torch.Tensor) -> torch.Tensor:
        """[1, 768, T] as ``cnhubert.get_content``: the feature extractor's per-utterance normalisation first."""
        wav = wav16k.reshape(-1).to(torch.float32)
        if self.normalize:
            wav = (wav - wav.mean()) / torch.sqrt(wav.var(unbiased=False) + NORM_EPS)
        return self._forward(wav)


def hubert_config(size: str) -> HubertConfig:
    """``full`` is HubertConfig()'s base values (manifests/hf_chinese_hubert_base.json); ``tiny`` keeps
    the widths SoVITS hard-codes (768) and the 320x conv downsampling, and shrinks the rest."""
    if size == "full":
        return HubertConfig()
    if size == "tiny":
        return HubertConfig(
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            conv_dim=(32,) * 7,
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=16,
        )
    raise ValueError(f"unknown model size {size!r}; expected 'tiny' or 'full'")


def write_random_hubert(folder: str | os.PathLike, size: str = "tiny", seed: int = 0) -> Path:
    """A seeded random HF folder in chinese-hubert-base's layout: config, preprocessor config, weights."""
    folder = Path(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = HubertModel(hubert_config(size))
    model.save_pretrained(folder)
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False
    ).save_pretrained(folder)
    return folder
