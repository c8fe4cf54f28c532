"""Text -> the GPT's conditioning: v2 phone ids and one 1024-d BERT vector per phone.

Upstream's ``get_phones_and_bert``: Chinese language segments get BERT features of their
normalised text, expanded per phone; every other segment gets zeros. Here the BERT work of many
texts (all the chunks of a diary) runs in one batched call instead of once per segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engine.features.bert import BertFeatures
from engine.text import phonemize_segments, phones_to_ids


@dataclass
class TextFeatures:
    phone_ids: list[int]
    bert: torch.Tensor  # [1024, len(phone_ids)]
    norm_text: str


def text_features_many(bert: BertFeatures, texts: Sequence[str], language: str) -> list[TextFeatures]:
    segmented = [phonemize_segments(text, language) for text in texts]
    features = bert.phone_features_many(segmented)
    return [
        TextFeatures(phones_to_ids([p for seg in segs for p in seg.phones]), feats, "".join(seg.norm_text for seg in segs))
        for segs, feats in zip(segmented, features, strict=True)
    ]


def text_features(bert: BertFeatures, text: str, language: str) -> TextFeatures:
    return text_features_many(bert, [text], language)[0]
