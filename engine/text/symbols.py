"""The v2 phone table: phone symbols to ids, and per-phone expansion of word features."""

from __future__ import annotations

from functools import cache

import torch

from engine.errors import BadText
from engine.text._data import symbols_v2

# Punctuation marks that survive normalisation and are phones of their own.
PUNCTUATION = ("!", "?", "…", ",", ".", "-")


@cache
def symbol_to_id() -> dict[str, int]:
    return {s: i for i, s in enumerate(symbols_v2())}


def phones_to_ids(phones: list[str]) -> list[int]:
    """Map v2 phone symbols to their ids (index in upstream's symbols2.symbols)."""
    table = symbol_to_id()
    try:
        return [table[p] for p in phones]
    except KeyError as e:
        raise BadText(f"unknown phone symbol {e.args[0]!r}; the frontend should never produce it") from None


def expand_word_features(features: torch.Tensor, word2ph: list[int]) -> torch.Tensor:
    """(n_tokens, dim) features -> (dim, n_phones): token i repeated word2ph[i] times.

    This is how upstream aligns one BERT vector per character of norm_text with its phones.
    """
    if features.dim() != 2:
        raise ValueError(f"features must be (n_tokens, dim), got shape {tuple(features.shape)}")
    if features.shape[0] != len(word2ph):
        raise ValueError(f"{features.shape[0]} feature rows for {len(word2ph)} word2ph entries")
    repeats = torch.as_tensor(word2ph, dtype=torch.long, device=features.device)
    return torch.repeat_interleave(features, repeats, dim=0).T
