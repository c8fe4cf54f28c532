"""Size and vocabulary of the text-to-semantic GPT, as read from an s1 checkpoint's config.

Its own module so that the model (:mod:`engine.t2s`) and its KV cache (:mod:`engine.kv_cache`) can
both use it without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class T2SConfig:
    hidden_dim: int = 512
    num_heads: int = 16
    num_layers: int = 24
    phoneme_vocab_size: int = 732
    vocab_size: int = 1025  # semantic ids 0..1023 + EOS
    max_sec: int = 54  # data.max_sec: early stop after 50 * max_sec tokens

    @property
    def eos(self) -> int:
        return self.vocab_size - 1

    @property
    def ffn_dim(self) -> int:
        return 4 * self.hidden_dim  # upstream ignores the config's linear_units

    @property
    def head_dim(self) -> int:
        return self.hidden_dim // self.num_heads

    @property
    def early_stop_num(self) -> int:
        return 50 * self.max_sec

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> T2SConfig:
        """From a checkpoint's config dict (the s1 YAML: ``model`` and ``data`` sections)."""
        model = config["model"]
        if model["embedding_dim"] != model["hidden_dim"]:
            raise ValueError("s1 configs with embedding_dim != hidden_dim are not valid upstream models")
        if model.get("EOS", model["vocab_size"] - 1) != model["vocab_size"] - 1:
            raise ValueError("s1 EOS must be the last vocabulary entry")
        return cls(
            hidden_dim=int(model["hidden_dim"]),
            num_heads=int(model["head"]),
            num_layers=int(model["n_layer"]),
            phoneme_vocab_size=int(model["phoneme_vocab_size"]),
            vocab_size=int(model["vocab_size"]),
            max_sec=int(config.get("data", {}).get("max_sec", 54)),
        )

    @classmethod
    def full(cls) -> T2SConfig:
        """The released size (``configs/s1longer-v2.yaml``), 77.6 M parameters."""
        return cls()

    @classmethod
    def tiny(cls) -> T2SConfig:
        """The size of ``fixtures/models/s1_tiny.ckpt``."""
        return cls(hidden_dim=32, num_heads=2, num_layers=2, max_sec=1)

    def checkpoint_config(self) -> dict[str, Any]:
        """A config dict in the layout of ``s1longer-v2.yaml`` as ``s1_train.py`` stores it."""
        return {
            "train": {"seed": 1234, "epochs": 20, "batch_size": 8, "save_every_n_epoch": 1,
                      "precision": "16-mixed", "gradient_clip": 1.0},
            "optimizer": {"lr": 0.01, "lr_init": 1e-05, "lr_end": 0.0001, "warmup_steps": 2000,
                          "decay_steps": 40000},
            "data": {"max_eval_sample": 8, "max_sec": self.max_sec, "num_workers": 4, "pad_val": self.eos},
            "model": {"vocab_size": self.vocab_size, "phoneme_vocab_size": self.phoneme_vocab_size,
                      "embedding_dim": self.hidden_dim, "hidden_dim": self.hidden_dim, "head": self.num_heads,
                      "linear_units": self.ffn_dim, "n_layer": self.num_layers, "dropout": 0, "EOS": self.eos,
                      "random_bert": 0},
            "inference": {"top_k": 15},
        }
