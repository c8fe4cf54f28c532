"""engine.features.bert: upstream's hidden_states[-3] features, faster, from local folders only."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported

import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer, BertForMaskedLM

from engine.errors import BadText, ModelsMissing
from engine.features.bert import (
    BertFeatures,
    _pack_rows,
    bert_config,
    build_vocab,
    write_bert_tokenizer,
    write_random_bert,
)
from engine.parity import check_features
from engine.text import PhoneSegment, phonemize_segments

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "reference" / "gpt-sovits" / "fixtures"
MANIFESTS = SHARED / "reference" / "gpt-sovits" / "manifests"
BENCH = SHARED / "reference" / "bench"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open an internet connection fails the test."""

    def refuse(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network access attempted: {address}")
        return real_connect(self, address)

    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_bert(tmp_path_factory.mktemp("bert") / "chinese-roberta-wwm-ext-large", "tiny", seed=3)


@pytest.fixture(scope="module")
def tiny(tiny_folder: Path) -> BertFeatures:
    return BertFeatures.load(tiny_folder)


def test_bert_goldens_match_upstream(no_network: None) -> None:
    results = {r.name: r for r in check_features.check_bert(FIXTURES)}
    for name in ("bert.input_ids", "bert.hidden_states_minus3", "bert.get_bert_feature"):
        assert results[name].passed, results[name].line()


def test_phones_and_bert_golden_matches_upstream() -> None:
    results = {r.name: r for r in check_features.check_bert(FIXTURES)}
    for name in ("bert.get_phones_and_bert.phone_ids", "bert.get_phones_and_bert"):
        assert results[name].passed, results[name].line()


def test_cut_encoder_equals_the_full_models_third_to_last_hidden_state(tiny_folder: Path, tiny: BertFeatures) -> None:
    full = AutoModelForMaskedLM.from_pretrained(tiny_folder, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_folder, local_files_only=True)
    inputs = tokenizer("今天天气很好,我们去公园散步.", return_tensors="pt")
    with torch.no_grad():
        expected = full(**inputs, output_hidden_states=True).hidden_states[-3]
    assert len(tiny.model.encoder.layer) == full.config.num_hidden_layers - 2
    assert (tiny.hidden(inputs["input_ids"]) - expected).abs().max() < 1e-5


def test_features_repeat_each_characters_vector_per_phone(tiny: BertFeatures) -> None:
    text, word2ph = "你好,世界.", [2, 2, 1, 2, 2, 1]
    features = tiny.features(text, word2ph)
    assert features.shape == (1024, sum(word2ph))
    states = tiny.hidden(torch.tensor([tiny.token_ids(text)]))[0, 1:-1]
    assert torch.equal(features[:, 0], states[0]) and torch.equal(features[:, 1], states[0])
    assert torch.equal(features[:, 4], states[2])  # the comma: one phone
    assert torch.equal(features[:, -1], states[-1])


def test_batched_features_equal_one_by_one(tiny: BertFeatures) -> None:
    items = [
        ("我今天很开心.", [2, 2, 2, 2, 2, 2, 1]),
        ("好.", [2, 1]),
        ("周末的早上,我和爸爸一起去河边钓鱼.", [2] * 5 + [1] + [2] * 11 + [1]),
        ("天刚亮.", [2, 2, 2, 1]),
    ]
    single = [tiny.features(text, w2p) for text, w2p in items]
    for row_tokens, rows_per_call in ((512, 8), (20, 2)):  # one packed row; many rows over several calls
        batched = tiny.features_many(items, row_tokens, rows_per_call)
        for one, many in zip(single, batched, strict=True):
            assert one.shape == many.shape
            assert (one - many).abs().max() < 1e-4


def test_phone_features_give_zeros_to_other_languages(tiny: BertFeatures) -> None:
    segments = [
        PhoneSegment("zh", ["n", "i3", "h", "ao3", "."], [2, 2, 1], "你好."),
        PhoneSegment("en", ["HH", "AH0", "L", "OW1"], None, "hello"),
        PhoneSegment("zh", ["z", "ai4", "j", "ian4", "."], [2, 2, 1], "再见."),
    ]
    features = tiny.phone_features(segments)
    assert features.shape == (1024, 14)
    assert torch.equal(features[:, 5:9], torch.zeros(1024, 4))
    assert torch.allclose(features[:, :5], tiny.features("你好.", [2, 2, 1]), atol=1e-5)
    assert torch.allclose(features[:, 9:], tiny.features("再见.", [2, 2, 1]), atol=1e-5)


def test_phone_features_of_frontend_segments_batch_across_texts(tiny: BertFeatures) -> None:
    texts = ["今天我用ChatGPT写了日记。", "晚上和朋友去吃饭，很开心。", "好。"]
    segmented = [phonemize_segments(text, "zh") for text in texts]
    batched = tiny.phone_features_many(segmented)
    for segments, features in zip(segmented, batched, strict=True):
        assert features.shape == (1024, sum(len(seg.phones) for seg in segments))
        assert (features - tiny.phone_features(segments)).abs().max() < 1e-4
    assert any(seg.lang == "en" for seg in segmented[0])


def test_packed_rows_hold_each_segment_once_and_balance_the_load() -> None:
    lengths = [30, 5, 12, 40, 7, 22, 9]
    rows = _pack_rows(lengths, 64)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    loads = [sum(lengths[i] for i in row) for row in rows]
    assert all(load <= 64 for load in loads)
    assert len(rows) == 2 and max(loads) - min(loads) <= 12  # 125 tokens need two rows of 64
    assert _pack_rows([100], 64) == [[0]]  # a segment longer than a row gets a row of its own


def test_mismatched_word2ph_is_bad_text(tiny: BertFeatures) -> None:
    with pytest.raises(BadText, match="one word2ph entry per character"):
        tiny.features("你好.", [2, 2])


def test_ascii_words_that_merge_into_fewer_tokens_are_bad_text(tiny: BertFeatures) -> None:
    with pytest.raises(BadText, match="BERT tokens"):
        tiny.features("a b", [1, 1, 1])  # the space is no token


def test_overlong_segment_is_bad_text(tiny: BertFeatures) -> None:
    with pytest.raises(BadText, match="too long"):
        tiny.features("好" * 600, [2] * 600)


def test_loading_a_missing_folder_names_it_without_any_network(tmp_path: Path, no_network: None) -> None:
    with pytest.raises(ModelsMissing, match="no folder"):
        BertFeatures.load(tmp_path / "chinese-roberta-wwm-ext-large")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(ModelsMissing, match="vocab.txt"):
        BertFeatures.load(tmp_path / "half")


def test_weights_that_do_not_fit_the_config_are_refused(
    tmp_path: Path, tiny_folder: Path, tiny: BertFeatures
) -> None:
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(tiny_folder, broken)
    weights = load_file(str(broken / "model.safetensors"))
    del weights["bert.encoder.layer.0.output.dense.weight"]
    save_file(weights, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelsMissing, match="output.dense.weight"):
        BertFeatures.load(broken)
    # the top two layers are never run, so a file without them still serves
    weights = load_file(str(tiny_folder / "model.safetensors"))
    save_file({k: v for k, v in weights.items() if ".layer.2." not in k}, str(broken / "model.safetensors"),
              metadata={"format": "pt"})
    assert torch.equal(BertFeatures.load(broken).features("你好.", [2, 2, 1]), tiny.features("你好.", [2, 2, 1]))


def test_random_tiny_folder_loads_offline_as_upstream_loads_it(tiny_folder: Path, no_network: None) -> None:
    names = {p.name for p in tiny_folder.iterdir()}
    assert {"config.json", "vocab.txt", "tokenizer_config.json", "model.safetensors"} <= names
    model, info = AutoModelForMaskedLM.from_pretrained(tiny_folder, local_files_only=True, output_loading_info=True)
    assert isinstance(model, BertForMaskedLM)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.config.hidden_size == 1024
    BertFeatures.load(tiny_folder)


def test_random_writer_is_seeded(tmp_path: Path, tiny_folder: Path) -> None:
    from safetensors.torch import load_file

    again = load_file(str(write_random_bert(tmp_path / "a", "tiny", seed=3) / "model.safetensors"))
    other = load_file(str(write_random_bert(tmp_path / "b", "tiny", seed=4) / "model.safetensors"))
    first = load_file(str(tiny_folder / "model.safetensors"))
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first[key], other[key])


def test_tiny_vocabulary_covers_everyday_text(tiny: BertFeatures) -> None:
    text = "".join(c for c in (BENCH / "bert_100.txt").read_text(encoding="utf-8") if "\u4e00" <= c <= "\u9fa5")
    ids = tiny.token_ids(text)[1:-1]
    assert len(ids) == len(text)
    unknown = sum(i == tiny.tokenizer.unk_token_id for i in ids)
    assert unknown <= len(text) // 20  # rare characters such as 鲫 may fall outside the 3000


def test_full_vocabulary_has_the_official_size_and_one_token_per_chinese_character(tmp_path: Path) -> None:
    tokenizer = write_bert_tokenizer(tmp_path, "full")
    assert len(build_vocab("full")) == len(tokenizer) == 21128
    block = "".join(chr(c) for c in range(0x4E00, 0x9FA6))
    ids = tokenizer(block)["input_ids"][1:-1]
    assert len(ids) == len(block) and tokenizer.unk_token_id not in ids
    mixed = tokenizer("今天是2024年,温度25度!")["input_ids"][1:-1]
    assert tokenizer.unk_token_id not in mixed
    assert tokenizer.pad_token_id == 0


def test_full_config_builds_exactly_the_manifests_keys_and_shapes() -> None:
    manifest = json.loads((MANIFESTS / "hf_chinese_roberta_wwm_ext_large.json").read_text())
    with torch.device("meta"):
        model = BertForMaskedLM(bert_config("full", len(build_vocab("full"))))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == {t["key"]: t["shape"] for t in manifest["tensors"]}
    assert sum(v.numel() for v in model.state_dict().values()) == manifest["num_params"]


@pytest.mark.slow
def test_full_random_folder_writes_and_loads(tmp_path: Path) -> None:
    from safetensors import safe_open

    folder = write_random_bert(tmp_path / "full", "full", seed=0)
    manifest = json.loads((MANIFESTS / "hf_chinese_roberta_wwm_ext_large.json").read_text())
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        stored = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    expected = {t["key"]: t["shape"] for t in manifest["tensors"]}
    # the tied MLM decoder is re-tied on load, so the file stores it once (as the word embeddings)
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    assert stored == {k: v for k, v in expected.items() if k not in tied}
    bert = BertFeatures.load(folder)
    assert len(bert.model.encoder.layer) == 22
    assert bert.features("小明喜欢看书.", [2] * 6 + [1]).shape == (1024, 13)


def test_features_can_feed_a_trainable_layer(tiny: BertFeatures) -> None:
    # fine-tuning projects these features with a trained layer; inference-mode tensors would refuse
    features = tiny.features("你好.", [2, 2, 1])
    proj = torch.nn.Linear(1024, 8)
    proj(features.T).sum().backward()
    assert proj.weight.grad is not None and not features.requires_grad
