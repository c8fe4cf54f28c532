"""Goldens of ``sv_golden`` (fbank, ERes2NetV2) and ``ssl_bert_golden`` (HuBERT paths, BERT features)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from engine import audio
from engine.features.bert import BertFeatures
from engine.features.hubert import HubertFeatures
from engine.features.speaker import SpeakerEncoder
from engine.parity import GoldenResult, compare, compare_exact, load_golden

SIGNAL_ATOL = 1e-4  # fbank
FEATURE_ATOL = 1e-3  # HuBERT / BERT features, SV embeddings (values reach ~60)

SV_FILE = "models/sv_eres2netv2_tiny.ckpt"
HUBERT_DIR = "models/chinese-hubert-tiny"
BERT_DIR = "models/chinese-roberta-tiny"


def check(folder: Path) -> Iterator[GoldenResult]:
    yield from check_speaker(folder)
    yield from check_hubert(folder)
    yield from check_bert(folder)


def check_speaker(folder: Path) -> Iterator[GoldenResult]:
    golden, _ = load_golden(folder, "sv_golden")
    wav = golden["in.wav16k"]
    feats = audio.fbank(wav)
    yield compare("sv.fbank", feats, golden["fbank"], SIGNAL_ATOL)
    encoder = SpeakerEncoder.load(folder / SV_FILE)
    yield compare("sv.forward3", encoder.embed(wav), golden["forward3"], FEATURE_ATOL)
    with torch.no_grad():
        embedding = encoder.model(feats)
    yield compare("sv.forward_embedding", embedding, golden["forward_embedding"], FEATURE_ATOL)


def check_hubert(folder: Path) -> Iterator[GoldenResult]:
    golden, _ = load_golden(folder, "ssl_bert_golden")
    hubert = HubertFeatures.load(folder / HUBERT_DIR)
    wav = golden["hubert.in.wav16k"]
    yield compare("hubert.get_content", hubert.content_features(wav), golden["hubert.get_content"], FEATURE_ATOL)
    yield compare(
        "hubert.tts_prompt_path", hubert.prompt_features(wav), golden["hubert.tts_prompt_path"], FEATURE_ATOL
    )


def check_bert(folder: Path) -> Iterator[GoldenResult]:
    golden, meta = load_golden(folder, "ssl_bert_golden")
    bert = BertFeatures.load(folder / BERT_DIR)
    norm_text, word2ph = meta["bert.norm_text"], meta["bert.word2ph"]
    ids = bert.token_ids(norm_text)
    yield compare_exact("bert.input_ids", ids, golden["bert.input_ids"])
    hidden = bert.hidden(torch.tensor([ids]))
    yield compare("bert.hidden_states_minus3", hidden, golden["bert.hidden_states_minus3"], FEATURE_ATOL)
    yield compare("bert.get_bert_feature", bert.features(norm_text, word2ph), golden["bert.get_bert_feature"],
                  FEATURE_ATOL)
    yield from check_phones_and_bert(bert, golden, meta)


def check_phones_and_bert(bert: BertFeatures, golden: dict, meta: dict) -> Iterator[GoldenResult]:
    """The whole text -> (phones, BERT) path through the frontend's ``engine.text.phonemize_segments``."""
    from engine.text import phonemize_segments, phones_to_ids

    name = "bert.get_phones_and_bert"
    segments = phonemize_segments(meta["bert.text"], "zh")
    phones = [p for seg in segments for p in seg.phones]
    yield compare_exact(f"{name}.phone_ids", phones_to_ids(phones), meta["bert.get_phones_and_bert.phone_ids"])
    yield compare(name, bert.phone_features(segments), golden["bert.get_phones_and_bert"], FEATURE_ATOL)
