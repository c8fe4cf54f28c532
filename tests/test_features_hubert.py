"""engine.features.hubert: both upstream HuBERT paths, local folders only, seeded random folders."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported

import pytest
import torch
from transformers import HubertModel, Wav2Vec2FeatureExtractor

from engine.errors import ModelsMissing
from engine.features.hubert import PROMPT_TAIL_SAMPLES, HubertFeatures, hubert_config, write_random_hubert
from engine.parity import check_features

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "reference" / "gpt-sovits" / "fixtures"
MANIFESTS = SHARED / "reference" / "gpt-sovits" / "manifests"


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
    return write_random_hubert(tmp_path_factory.mktemp("hubert") / "chinese-hubert-base", "tiny", seed=5)


def frames(samples: int) -> int:
    """Output frames of the base conv stack (kernels 10,3,3,3,3,2,2; strides 5,2,2,2,2,2,2)."""
    for kernel, stride in zip((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2), strict=True):
        samples = (samples - kernel) // stride + 1
    return samples


def test_hubert_goldens_match_upstream(no_network: None) -> None:
    results = list(check_features.check_hubert(FIXTURES))
    assert [r.name for r in results] == ["hubert.get_content", "hubert.tts_prompt_path"]
    assert all(r.passed for r in results), [r.line() for r in results]


def test_prompt_features_append_0_6_s_of_silence(tiny_folder: Path) -> None:
    hubert = HubertFeatures.load(tiny_folder)
    wav = 0.1 * torch.randn(48000)
    out = hubert.prompt_features(wav)
    assert out.shape == (1, 768, frames(48000 + PROMPT_TAIL_SAMPLES))
    with torch.no_grad():
        padded = torch.cat([wav, torch.zeros(9600)])[None]
        expected = hubert.model(padded).last_hidden_state.transpose(1, 2)
    assert torch.equal(out, expected)


def test_content_features_normalise_like_the_feature_extractor(tiny_folder: Path) -> None:
    hubert = HubertFeatures.load(tiny_folder)
    wav = 0.3 * torch.randn(16000) + 0.05
    extractor = Wav2Vec2FeatureExtractor.from_pretrained(tiny_folder, local_files_only=True)
    normalised = extractor(wav.numpy(), return_tensors="pt", sampling_rate=16000).input_values
    with torch.no_grad():
        expected = hubert.model(normalised).last_hidden_state.transpose(1, 2)
    out = hubert.content_features(wav)
    assert out.shape == (1, 768, frames(16000))
    # tight: HuBERT's first GroupNorm makes it nearly blind to scale and offset (~3e-4 here without
    # the normalisation), so only a close match shows the normalisation is the extractor's
    assert (out - expected).abs().max() < 3e-5


def test_random_tiny_folder_has_the_official_files_and_loads_as_upstream_does(tiny_folder: Path) -> None:
    names = {p.name for p in tiny_folder.iterdir()}
    assert {"config.json", "preprocessor_config.json", "model.safetensors"} <= names
    preprocessor = json.loads((tiny_folder / "preprocessor_config.json").read_text())
    assert preprocessor["do_normalize"] is True and preprocessor["sampling_rate"] == 16000
    model, info = HubertModel.from_pretrained(tiny_folder, local_files_only=True, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.config.hidden_size == 768


def test_random_writer_is_seeded(tmp_path: Path, tiny_folder: Path) -> None:
    from safetensors.torch import load_file

    first = load_file(str(tiny_folder / "model.safetensors"))
    again = load_file(str(write_random_hubert(tmp_path / "a", "tiny", seed=5) / "model.safetensors"))
    other = load_file(str(write_random_hubert(tmp_path / "b", "tiny", seed=6) / "model.safetensors"))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["feature_projection.projection.weight"], other["feature_projection.projection.weight"])


def test_random_writer_leaves_the_global_generator_alone(tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    write_random_hubert(tmp_path / "h", "tiny", seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_loading_a_missing_folder_names_it_without_any_network(tmp_path: Path, no_network: None) -> None:
    with pytest.raises(ModelsMissing, match="chinese-hubert-base"):
        HubertFeatures.load(tmp_path / "chinese-hubert-base")


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path: Path, tiny_folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(tiny_folder, broken)
    weights = load_file(str(broken / "model.safetensors"))
    del weights["encoder.layers.1.attention.k_proj.weight"]
    save_file(weights, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelsMissing, match="k_proj"):
        HubertFeatures.load(broken)


def test_full_config_builds_exactly_the_manifests_keys_and_shapes() -> None:
    manifest = json.loads((MANIFESTS / "hf_chinese_hubert_base.json").read_text())
    config = hubert_config("full")
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "conv_dim",
                "conv_kernel", "conv_stride", "num_conv_pos_embeddings", "feat_extract_norm"):
        assert json.loads(json.dumps(getattr(config, key))) == manifest["hf_config"][key], key
    with torch.device("meta"):
        model = HubertModel(config)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == {t["key"]: t["shape"] for t in manifest["tensors"]}
    assert sum(v.numel() for v in model.state_dict().values()) == manifest["num_params"]


@pytest.mark.slow
def test_full_random_folder_stores_the_manifests_tensors(tmp_path: Path) -> None:
    from safetensors import safe_open

    folder = write_random_hubert(tmp_path / "full", "full", seed=0)
    manifest = json.loads((MANIFESTS / "hf_chinese_hubert_base.json").read_text())
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        stored = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    assert stored == {t["key"]: t["shape"] for t in manifest["tensors"]}
    assert HubertFeatures.load(folder).prompt_features(0.1 * torch.randn(16000)).shape[1] == 768


def test_features_can_feed_a_trainable_layer(tiny_folder: Path) -> None:
    # fine-tuning projects SSL features with a trained conv; inference-mode tensors would refuse
    ssl = HubertFeatures.load(tiny_folder).content_features(0.1 * torch.randn(16000))
    proj = torch.nn.Conv1d(768, 8, 1)
    proj(ssl).sum().backward()
    assert proj.weight.grad is not None
