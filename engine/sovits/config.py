"""SoVITS dimensions: one dataclass built from a checkpoint's config dict, plus the official presets.

Widths upstream hard-codes (not in any config) are module constants here.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from typing import Any

SSL_DIM = 768  # HuBERT base width, input of ssl_proj and the codebook
CODEBOOK_SIZE = 1024
MRTE_DIM = 512  # MRTE works at 512 whatever the config says; its in/out is hidden_channels (192)
REF_BINS = 704  # the reference encoder reads only the first 704 of the 1025 spectrogram bins
SV_DIM = 20480  # ERes2NetV2 forward3 embedding (v2Pro/v2ProPlus)
N_SYMBOLS_V2 = 732  # phone table of v2 (symbols_v2.json)
POSTERIOR_LAYERS = 16  # enc_q WN depth, fixed upstream
FLOW_KERNEL = 5
FLOW_LAYERS = 4  # WN layers per coupling layer
N_FLOWS = 4

VERSIONS = ("v2", "v2Pro", "v2ProPlus")

# configs/s2.json "train" section; the WebUI overrides batch size and epochs.
_OFFICIAL_TRAIN: dict[str, Any] = {
    "log_interval": 100,
    "eval_interval": 500,
    "seed": 1234,
    "epochs": 100,
    "learning_rate": 0.0001,
    "betas": [0.8, 0.99],
    "eps": 1e-09,
    "batch_size": 32,
    "fp16_run": True,
    "lr_decay": 0.999875,
    "segment_size": 20480,
    "init_lr_ratio": 1,
    "warmup_epochs": 0,
    "c_mel": 45,
    "c_kl": 1.0,
    "text_low_lr_rate": 0.4,
    "grad_ckpt": False,
}


@dataclass(frozen=True)
class SoVITSConfig:
    version: str = "v2"
    # model section
    inter_channels: int = 192
    hidden_channels: int = 192
    filter_channels: int = 768
    n_heads: int = 2
    n_layers: int = 6
    kernel_size: int = 3
    p_dropout: float = 0.1
    resblock: str = "1"
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    upsample_rates: tuple[int, ...] = (10, 8, 2, 2, 2)
    upsample_initial_channel: int = 512
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 8, 2, 2)
    gin_channels: int = 512
    semantic_frame_rate: str = "25hz"
    freeze_quantizer: bool = True
    n_layers_q: int = 3  # in every config, unused by the model
    use_spectral_norm: bool = False
    # data section
    sampling_rate: int = 32000
    filter_length: int = 2048
    hop_length: int = 640
    win_length: int = 2048
    n_mel_channels: int = 128
    segment_size: int = 20480  # samples, train section
    n_symbols: int = N_SYMBOLS_V2
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.version not in VERSIONS:
            raise ValueError(f"unsupported SoVITS version {self.version!r}; expected one of {VERSIONS}")
        if self.hidden_channels != 192:
            raise ValueError("hidden_channels must be 192: MRTE's input/output width is fixed upstream")
        if self.version == "v2" and self.gin_channels not in (0, MRTE_DIM):
            raise ValueError("v2 adds the timbre vector inside MRTE at width 512, so gin_channels must be 512")
        if self.resblock != "1":
            raise ValueError("only resblock '1' (every official config) is implemented")
        if self.semantic_frame_rate not in ("25hz", "50hz"):
            raise ValueError(f"semantic_frame_rate must be 25hz or 50hz, not {self.semantic_frame_rate!r}")

    # -- derived sizes ----------------------------------------------------------------------------
    @property
    def is_pro(self) -> bool:
        return self.version in ("v2Pro", "v2ProPlus")

    @property
    def spec_channels(self) -> int:
        return self.filter_length // 2 + 1

    @property
    def segment_frames(self) -> int:
        return self.segment_size // self.hop_length

    @property
    def samples_per_frame(self) -> int:
        """The generator's total upsampling (640 = hop_length in every official config)."""
        return math.prod(self.upsample_rates)

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_checkpoint_config(cls, config: dict[str, Any], version: str | None = None) -> SoVITSConfig:
        """Build from the ``config`` entry of an s2 ``.pth`` (``model``, ``data``, ``train`` sections).

        ``version`` (from the file header) wins over the one stored in the config, as in upstream's TTS.
        """
        model = dict(config["model"])
        data = dict(config.get("data", {}))
        train = dict(config.get("train", {}))
        version = version or model.get("version") or config.get("version") or "v2"
        known = {f for f in cls.__dataclass_fields__ if f not in ("version", "extra")}
        kwargs: dict[str, Any] = {}
        for section in (data, model):
            for key, value in section.items():
                if key in known:
                    kwargs[key] = _as_tuple(value)
        if "segment_size" in train:
            kwargs["segment_size"] = int(train["segment_size"])
        return cls(version=version, extra=copy.deepcopy(config), **kwargs)

    @classmethod
    def full(cls, version: str = "v2") -> SoVITSConfig:
        """The official configs: configs/s2.json, s2v2Pro.json, s2v2ProPlus.json."""
        if version == "v2":
            return cls(version="v2")
        if version == "v2Pro":
            return cls(version="v2Pro", p_dropout=0.0, gin_channels=1024)
        if version == "v2ProPlus":
            return cls(
                version="v2ProPlus",
                p_dropout=0.0,
                gin_channels=1024,
                upsample_initial_channel=768,
                upsample_kernel_sizes=(20, 16, 8, 2, 2),
            )
        raise ValueError(f"unsupported SoVITS version {version!r}; expected one of {VERSIONS}")

    @classmethod
    def tiny(cls, version: str = "v2") -> SoVITSConfig:
        """The shapes of the fixture models (fixtures/README.md): fixed upstream widths kept, the rest shrunk."""
        full = cls.full(version)
        return cls(
            version=version,
            inter_channels=32,
            filter_channels=64,
            n_layers=2,
            p_dropout=full.p_dropout,
            upsample_initial_channel=64,
            upsample_kernel_sizes=full.upsample_kernel_sizes,
            gin_channels=512 if version == "v2" else 32,
        )

    @classmethod
    def preset(cls, version: str, size: str) -> SoVITSConfig:
        if size == "full":
            return cls.full(version)
        if size == "tiny":
            return cls.tiny(version)
        raise ValueError(f"size must be 'tiny' or 'full', not {size!r}")

    # -- back to upstream's dict ------------------------------------------------------------------
    def model_dict(self) -> dict[str, Any]:
        """The ``model`` section as upstream's JSON configs write it (plus ``version`` as the WebUI adds)."""
        values = asdict(self)
        keys = (
            "inter_channels", "hidden_channels", "filter_channels", "n_heads", "n_layers", "kernel_size",
            "p_dropout", "resblock", "resblock_kernel_sizes", "resblock_dilation_sizes", "upsample_rates",
            "upsample_initial_channel", "upsample_kernel_sizes", "n_layers_q", "use_spectral_norm",
            "gin_channels", "semantic_frame_rate", "freeze_quantizer",
        )  # fmt: skip
        out = {key: _as_list(values[key]) for key in keys}
        out["version"] = self.version
        return out

    def checkpoint_config(self, name: str = "echodiary") -> dict[str, Any]:
        """A whole config dict in the shape the WebUI pickles into fine-tuned files."""
        data = {
            "max_wav_value": 32768.0,
            "sampling_rate": self.sampling_rate,
            "filter_length": self.filter_length,
            "hop_length": self.hop_length,
            "win_length": self.win_length,
            "n_mel_channels": self.n_mel_channels,
            "mel_fmin": 0.0,
            "mel_fmax": None,
            "add_blank": True,
            "n_speakers": 300,
            "cleaned_text": True,
            "exp_dir": f"logs/{name}",
        }
        train = dict(_OFFICIAL_TRAIN, segment_size=self.segment_size)
        return {
            "train": train,
            "data": data,
            "model": self.model_dict(),
            "s2_ckpt_dir": f"logs/{name}",
            "content_module": "cnhubert",
            "save_weight_dir": f"SoVITS_weights_{self.version}",
            "name": name,
            "version": self.version,
        }


def _as_tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    return value


def _as_list(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_as_list(v) for v in value]
    return value
