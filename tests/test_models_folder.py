"""The models folder: upstream's layout, files that match the official manifests, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine import checkpoints
from engine.errors import ModelsMissing
from engine.model_files import (
    GPT_FILES,
    SOVITS_FILES,
    check_models,
    detect_version,
    download_models,
    find_models,
)

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = REPO.parent / "shared" / "reference" / "gpt-sovits" / "manifests"


def manifest(name: str) -> dict[str, list[int]]:
    return {t["key"]: t["shape"] for t in json.loads((MANIFESTS / f"{name}.json").read_text())["tensors"]}


def shapes(state: dict) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in state.items()}


def hf_shapes(folder: Path) -> dict[str, list[int]]:
    if (folder / "model.safetensors").exists():
        from safetensors.torch import load_file

        return shapes(load_file(str(folder / "model.safetensors")))
    return shapes(torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True))


@pytest.fixture(scope="module")
def full_v2pro(tmp_path_factory) -> Path:
    """A full-size v2Pro folder written by the CLI: every kind of official file at the released shapes."""
    root = tmp_path_factory.mktemp("models-full")
    out = subprocess.run([sys.executable, "-m", "producer.cli", "models", "init", "--random", str(root),
                          "--size", "full", "--version", "v2Pro", "--seed", "3"],
                         capture_output=True, text=True, cwd=REPO, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return root


def test_full_random_files_match_the_official_manifests(full_v2pro):
    gpt = checkpoints.load_t2s_checkpoint(full_v2pro / GPT_FILES["v2Pro"])
    assert shapes(gpt.weight) == manifest("s1_gpt_v2")
    assert all(t.dtype == torch.float16 for t in gpt.weight.values())
    assert gpt.config["data"]["max_sec"] == 54

    sovits = checkpoints.load_sovits_checkpoint(full_v2pro / SOVITS_FILES["v2Pro"])
    assert sovits.version == "v2Pro"
    assert shapes(sovits.weight) == manifest("s2G_v2Pro")  # the pretrained layout keeps enc_q
    disc = checkpoints.load_discriminator_checkpoint(full_v2pro / "v2Pro" / "s2Dv2Pro.pth")
    assert shapes(disc) == manifest("s2D_v2Pro")
    sv = checkpoints.load_sv_checkpoint(full_v2pro / "sv" / "pretrained_eres2netv2w24s4ep4.ckpt")
    assert shapes(sv) == manifest("sv_eres2netv2")

    assert hf_shapes(full_v2pro / "chinese-hubert-base") == manifest("hf_chinese_hubert_base")
    bert = hf_shapes(full_v2pro / "chinese-roberta-wwm-ext-large")
    expected = manifest("hf_chinese_roberta_wwm_ext_large")
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}  # re-tied on load
    assert {k: v for k, v in bert.items() if k not in tied} == {k: v for k, v in expected.items() if k not in tied}


def test_check_reports_a_complete_folder(full_v2pro):
    assert detect_version(full_v2pro) == "v2Pro"
    reports = check_models(full_v2pro)
    assert reports and all(r.ok for r in reports), [r for r in reports if not r.ok]
    assert any("v2Pro" in r.kind for r in reports)


def test_missing_files_are_named_with_where_they_go(tmp_path):
    (tmp_path / "chinese-hubert-base").mkdir()
    with pytest.raises(ModelsMissing) as err:
        find_models(tmp_path, "v2")
    message = str(err.value)
    assert "s2G2333k.pth" in message and "chinese-roberta-wwm-ext-large" in message
    assert "echodiary models download" in message


def test_check_command_fails_on_an_unusable_file(tmp_path):
    from engine.model_files import init_random

    init_random(tmp_path, size="tiny", version="v2", seed=1)
    (tmp_path / SOVITS_FILES["v2"]).write_bytes(b"PK\x03\x04 not really a checkpoint")
    out = subprocess.run([sys.executable, "-m", "producer.cli", "models", "check", str(tmp_path)],
                         capture_output=True, text=True, cwd=REPO, check=False)  # fmt: skip
    assert out.returncode == 1
    assert "problem" in out.stdout and "cannot be used" in out.stdout


def test_download_offline_fails_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelsMissing) as err:
        download_models(tmp_path, "v2")
    assert "huggingface.co/lj1995/GPT-SoVITS" in str(err.value)
    assert "s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt" in str(err.value)
