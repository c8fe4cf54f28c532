"""engine.features.speaker: ERes2NetV2 forward3 embeddings from upstream's bare .ckpt, loaded safely."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from engine.features.speaker import (
    ERes2NetV2,
    SpeakerConfig,
    SpeakerEncoder,
    load_speaker_model,
    write_random_speaker,
)
from engine.parity import check_features

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "reference" / "gpt-sovits" / "fixtures"
MANIFESTS = SHARED / "reference" / "gpt-sovits" / "manifests"


def test_speaker_goldens_match_upstream() -> None:
    results = list(check_features.check_speaker(FIXTURES))
    assert [r.name for r in results] == ["sv.fbank", "sv.forward3", "sv.forward_embedding"]
    assert all(r.passed for r in results), [r.line() for r in results]


def test_config_is_read_from_the_weights() -> None:
    model = load_speaker_model(FIXTURES / "models" / "sv_eres2netv2_tiny.ckpt")
    assert model.cfg == SpeakerConfig.of_size("tiny")
    assert model.cfg.sv_dim == 2560
    assert SpeakerConfig.of_size("full").sv_dim == 20480


def test_full_config_builds_exactly_the_manifests_keys_and_shapes() -> None:
    manifest = json.loads((MANIFESTS / "sv_eres2netv2.json").read_text())
    with torch.device("meta"):
        model = ERes2NetV2(SpeakerConfig.of_size("full"))
    state = model.state_dict()
    assert [(k, list(v.shape)) for k, v in state.items()] == [(t["key"], t["shape"]) for t in manifest["tensors"]]
    assert sum(v.numel() for v in state.values()) == manifest["num_params"]


def test_embedding_of_a_batch_equals_each_row_alone(tmp_path: Path) -> None:
    encoder = SpeakerEncoder.load(write_random_speaker(tmp_path / "sv.ckpt", "tiny", seed=1))
    wavs = 0.1 * torch.randn(2, 24000)
    batched = encoder.embed(wavs)
    assert batched.shape == (2, 2560)
    for i in range(2):
        assert (batched[i] - encoder.embed(wavs[i])[0]).abs().max() < 1e-4
    assert (batched[0] - batched[1]).abs().max() > 1e-3  # different voices, different vectors


def test_random_writer_saves_a_bare_float32_state_dict_and_is_seeded(tmp_path: Path) -> None:
    path = write_random_speaker(tmp_path / "sv" / "pretrained_eres2netv2w24s4ep4.ckpt", "tiny", seed=2)
    state = torch.load(path, weights_only=True)
    assert isinstance(state, dict) and state["conv1.weight"].dtype == torch.float32
    again = torch.load(write_random_speaker(tmp_path / "again.ckpt", "tiny", seed=2), weights_only=True)
    other = torch.load(write_random_speaker(tmp_path / "other.ckpt", "tiny", seed=3), weights_only=True)
    assert all(torch.equal(state[k], again[k]) for k in state)
    assert not torch.equal(state["conv1.weight"], other["conv1.weight"])
    assert not torch.equal(state["bn1.running_var"], torch.ones_like(state["bn1.running_var"]))


class Payload:
    """A pickled object whose unpickling would run code."""

    def __reduce__(self) -> tuple:
        return (print, ("pwned",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"conv1.weight": torch.zeros(1), "x": Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_speaker_model(path)


def test_a_file_that_is_no_speaker_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.ckpt"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="not an ERes2NetV2 state dict"):
        load_speaker_model(path)


def test_a_state_dict_with_missing_keys_is_refused(tmp_path: Path) -> None:
    state = torch.load(FIXTURES / "models" / "sv_eres2netv2_tiny.ckpt", weights_only=True)
    del state["layer4.2.bn3.weight"]
    path = tmp_path / "partial.ckpt"
    torch.save(state, path)
    with pytest.raises(RuntimeError, match="layer4.2.bn3.weight"):
        load_speaker_model(path)


def test_embeddings_can_feed_a_trainable_layer(tmp_path: Path) -> None:
    # v2Pro fine-tuning projects sv_emb with a trained linear; inference-mode tensors would refuse
    encoder = SpeakerEncoder.load(write_random_speaker(tmp_path / "sv.ckpt", "tiny", seed=1))
    proj = torch.nn.Linear(2560, 8)
    proj(encoder.embed(0.1 * torch.randn(16000))).sum().backward()
    assert proj.weight.grad is not None
