"""Feature extractors upstream GPT-SoVITS runs around its two models.

- :mod:`engine.features.hubert`: chinese-hubert-base SSL features (prompt semantic tokens).
- :mod:`engine.features.bert`: chinese-roberta-wwm-ext-large word features, one per phone.
- :mod:`engine.features.speaker`: ERes2NetV2 speaker embedding for v2Pro / v2ProPlus.
"""
