"""Text -> the GPT's conditioning: v2 phone ids and one 1024-d BERT vector per phone.

Upstream's ``get_phones_and_bert``: Chinese language segments get BERT features of their
normalised text, expanded per phone; every other segment gets zeros. Here the BERT work of many
texts (all the chunks of a diary) runs in one batched call instead of once per segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engine.features.bert import BERT_DIM, BertFeatures
from engine.text import phonemize_segments, phones_to_ids


@dataclass
class TextFeatures:
    phone_ids: list[int]
    bert: torch.Tensor  # [1024, len(phone_ids)]
    norm_text: str


def text_features_many(bert: BertFeatures, texts: Sequence[str], language: str) -> list[TextFeatures]:
    segmented = [phonemize_segments(text, language) for text in texts]
    zh = [(t, s) for t, segs in enumerate(segmented) for s, seg in enumerate(segs) if seg.lang == "zh"]
    found = bert.features_many([(segmented[t][s].norm_text, segmented[t][s].word2ph) for t, s in zh])
    by_key = dict(zip(zh, found, strict=True))
    out = []
    for t, segs in enumerate(segmented):
        parts = [
            by_key.get((t, s), torch.zeros(BERT_DIM, len(seg.phones), device=bert.device, dtype=bert.model.dtype))
            for s, seg in enumerate(segs)
        ]
        phones = [p for seg in segs for p in seg.phones]
        features = torch.cat(parts, dim=1) if parts else torch.zeros(BERT_DIM, 0, device=bert.device)
        out.append(TextFeatures(phones_to_ids(phones), features, "".join(seg.norm_text for seg in segs)))
    return out


def text_features(bert: BertFeatures, text: str, language: str) -> TextFeatures:
    return text_features_many(bert, [text], language)[0]
