"""Official model files: the tiny upstream-written fixtures load, our writers reproduce upstream's
layout (top-level keys, dtypes, header bytes, pickled config class), and nothing unsafe is unpickled."""

from __future__ import annotations

import io
import os
import pickletools
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from engine import checkpoints as ck
from engine.errors import ModelsMissing

MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "gpt-sovits" / "fixtures" / "models"
SOVITS_FILES = {"v2": "s2G_v2_tiny.pth", "v2Pro": "s2G_v2Pro_tiny.pth", "v2ProPlus": "s2G_v2ProPlus_tiny.pth"}


def zip_layout(path: Path) -> tuple[bytes, str, set[str], list[str]]:
    """(first two bytes, zip top folder, pickled global names, top-level pickle opcodes) of a torch file."""
    data = path.read_bytes()
    archive = zipfile.ZipFile(io.BytesIO(b"PK" + data[2:]))
    pkl = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
    globals_ = {str(arg) for op, arg, _ in pickletools.genops(archive.read(pkl)) if op.name == "GLOBAL"}
    return data[:2], pkl.split("/")[0], globals_, archive.namelist()


def raw_top_level(path: Path) -> OrderedDict:
    with torch.serialization.safe_globals([(ck.HParams, "utils.HParams")]):
        data = path.read_bytes()
        return torch.load(io.BytesIO(b"PK" + data[2:]), weights_only=True)


# ------------------------------------------------------------------ fixtures written by upstream


def test_tiny_s1_fixture_loads():
    ckpt = ck.load_t2s_checkpoint(MODELS / "s1_tiny.ckpt")
    assert ckpt.info == "GPT-e15"
    assert ckpt.config["model"]["hidden_dim"] == 32 and ckpt.max_sec == 1
    assert all(k.startswith("model.") and v.dtype == torch.float16 for k, v in ckpt.weight.items())
    assert "ar_predict_layer.weight" in ckpt.state_dict()


@pytest.mark.parametrize("version", list(SOVITS_FILES))
def test_tiny_sovits_fixtures_load_with_their_version(version):
    ckpt = ck.load_sovits_checkpoint(MODELS / SOVITS_FILES[version])
    assert ckpt.version == version
    assert isinstance(ckpt.config, dict) and isinstance(ckpt.config["model"], dict)  # plain dicts, not HParams
    assert ckpt.model_config()["version"] == version
    assert ckpt.info == "8epoch_96iteration"
    assert not ckpt.has_posterior_encoder
    assert all(v.dtype == torch.float16 for v in ckpt.weight.values())
    assert ("sv_emb.weight" in ckpt.weight) == (version != "v2")


def test_small_plain_v2_file_is_v1_by_size_then_v2_by_text_embedding():
    path = MODELS / SOVITS_FILES["v2"]
    data = path.read_bytes()
    assert ck.sovits_version_fast(data[:8192], len(data)) == "v1"  # upstream's size rule
    assert ck.load_sovits_checkpoint(path).version == "v2"


def test_tiny_sv_fixture_loads_as_bare_state_dict():
    state = ck.load_sv_checkpoint(MODELS / "sv_eres2netv2_tiny.ckpt")
    assert len(state) > 100 and all(isinstance(v, torch.Tensor) for v in state.values())


# ------------------------------------------------------------------ round trips


def test_s1_round_trip_keeps_the_official_layout(tmp_path):
    src = MODELS / "s1_tiny.ckpt"
    ckpt = ck.load_t2s_checkpoint(src)
    out = tmp_path / "gpt.ckpt"
    # Writing under our module names (no prefix, float32) must still give the official file.
    ck.save_t2s_checkpoint(out, {k: v.float() for k, v in ckpt.state_dict().items()}, ckpt.config, ckpt.info)

    head, folder, globals_, _ = zip_layout(out)
    ref_head, _, ref_globals, _ = zip_layout(src)
    assert head == ref_head == b"PK"
    assert folder.replace(".", "").isdigit()  # my_save's time.time() temp-file name
    assert globals_ == ref_globals
    top, ref = raw_top_level(out), raw_top_level(src)
    assert type(top) is OrderedDict and list(top) == list(ref) == ["weight", "config", "info"]
    assert type(top["weight"]) is type(ref["weight"]) and type(top["config"]) is dict
    again = ck.load_t2s_checkpoint(out)
    assert again.config == ckpt.config and again.info == ckpt.info
    assert list(again.weight) == list(ckpt.weight)
    for key, value in ckpt.weight.items():
        assert again.weight[key].dtype == torch.float16 and torch.equal(again.weight[key], value)


@pytest.mark.parametrize("version", list(SOVITS_FILES))
def test_sovits_round_trip_keeps_header_config_class_and_dtypes(tmp_path, version):
    src = MODELS / SOVITS_FILES[version]
    ckpt = ck.load_sovits_checkpoint(src)
    out = tmp_path / "voice.pth"
    ck.save_sovits_checkpoint(out, ckpt.weight, ckpt.config, ckpt.info, version)

    head, folder, globals_, _ = zip_layout(out)
    ref_head, ref_folder, ref_globals, _ = zip_layout(src)
    assert head == ref_head == {"v2": b"PK", "v2Pro": b"05", "v2ProPlus": b"06"}[version]
    assert "utils HParams" in globals_
    assert globals_ == ref_globals
    if version != "v2":
        assert folder == ref_folder == "archive"  # my_save2 saves through a BytesIO
    top, ref = raw_top_level(out), raw_top_level(src)
    assert list(top) == list(ref) == ["weight", "config", "info"]
    assert type(top["config"]) is ck.HParams and type(top["config"]["model"]) is ck.HParams
    assert type(top["weight"]) is type(ref["weight"])
    again = ck.load_sovits_checkpoint(out)
    assert again.version == version and again.config == ckpt.config and again.info == ckpt.info
    assert set(again.weight) == set(ckpt.weight)
    assert all(torch.equal(again.weight[k], v) and again.weight[k].dtype == torch.float16 for k, v in ckpt.weight.items())


def test_fine_tuned_layout_drops_posterior_encoder_and_pretrained_keeps_it(tmp_path):
    ckpt = ck.load_sovits_checkpoint(MODELS / SOVITS_FILES["v2Pro"])
    weight = {**ckpt.weight, "enc_q.pre.weight": torch.randn(4, 4), "enc_q.pre.bias": torch.randn(4)}
    ck.save_sovits_checkpoint(tmp_path / "ft.pth", weight, ckpt.config, "1epoch_2iteration", "v2Pro")
    ck.save_sovits_checkpoint(tmp_path / "pre.pth", weight, ckpt.config, "pretrained", "v2Pro", pretrained=True)

    fine_tuned = ck.load_sovits_checkpoint(tmp_path / "ft.pth")
    assert not fine_tuned.has_posterior_encoder and ck.file_header(tmp_path / "ft.pth") == b"05"
    pretrained = ck.load_sovits_checkpoint(tmp_path / "pre.pth")
    assert pretrained.has_posterior_encoder and pretrained.weight["enc_q.pre.weight"].dtype == torch.float16
    # Upstream's trainer opens pretrained files with a bare torch.load: they must be plain zips.
    assert ck.file_header(tmp_path / "pre.pth") == b"PK"
    assert pretrained.version == "v2Pro"  # found from the weights, the header says nothing


@pytest.mark.parametrize("version", ["v2Pro", "v2ProPlus"])
def test_plain_zip_pro_file_without_version_in_config_is_recognised_from_its_weights(tmp_path, version):
    ckpt = ck.load_sovits_checkpoint(MODELS / SOVITS_FILES[version])
    config = {**ckpt.config, "model": {k: v for k, v in ckpt.config["model"].items() if k != "version"}}
    config.pop("version")
    ck.save_sovits_checkpoint(tmp_path / "g.pth", ckpt.weight, config, "pretrained", version, pretrained=True)
    assert ck.load_sovits_checkpoint(tmp_path / "g.pth").version == version


def test_discriminator_and_sv_round_trips(tmp_path):
    weight = {"discriminators.0.convs.0.bias": torch.randn(16), "discriminators.0.convs.0.weight_g": torch.rand(16, 1, 1)}
    ck.save_discriminator_checkpoint(tmp_path / "s2D.pth", weight)
    top = raw_top_level(tmp_path / "s2D.pth")
    assert list(top) == ["weight"] and all(v.dtype == torch.float16 for v in top["weight"].values())
    loaded = ck.load_discriminator_checkpoint(tmp_path / "s2D.pth")
    assert set(loaded) == set(weight)
    assert all(torch.equal(loaded[k], v.half()) for k, v in weight.items())

    training = tmp_path / "D_100.pth"
    torch.save({"model": weight, "iteration": 100, "learning_rate": 1e-4}, training)
    assert set(ck.load_discriminator_checkpoint(training)) == set(weight)

    sv = ck.load_sv_checkpoint(MODELS / "sv_eres2netv2_tiny.ckpt")
    ck.save_sv_checkpoint(tmp_path / "sv.ckpt", sv)
    again = ck.load_sv_checkpoint(tmp_path / "sv.ckpt")
    assert list(again) == list(sv) and all(torch.equal(again[k], v) and again[k].dtype == v.dtype for k, v in sv.items())
    assert zip_layout(tmp_path / "sv.ckpt")[1] == "sv"


# ------------------------------------------------------------------ refusals


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("header", [b"PK", b"05"])
def test_file_with_code_in_its_pickle_is_refused_and_nothing_runs(tmp_path, header):
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save({"weight": {"x": torch.zeros(1)}, "config": _Exploit(marker), "info": "x"}, buffer)
    path = tmp_path / "evil.pth"
    path.write_bytes(header + buffer.getvalue()[2:])
    for loader in (ck.load_sovits_checkpoint, ck.load_t2s_checkpoint, ck.load_sv_checkpoint):
        with pytest.raises(ck.CheckpointError, match="refused"):
            loader(path)
    assert not marker.exists()


def test_unknown_class_in_pickle_is_refused(tmp_path):
    torch.save({"weight": {}, "config": zipfile.ZipInfo("x"), "info": ""}, tmp_path / "odd.ckpt")
    with pytest.raises(ck.CheckpointError, match="allow-list"):
        ck.load_t2s_checkpoint(tmp_path / "odd.ckpt")


def test_missing_file_and_foreign_files_get_clear_errors(tmp_path):
    with pytest.raises(ModelsMissing, match="not found"):
        ck.load_t2s_checkpoint(tmp_path / "nothing.ckpt")
    (tmp_path / "text.pth").write_text("hello, this is not a model")
    with pytest.raises(ck.CheckpointError, match="not a PyTorch zip"):
        ck.load_sovits_checkpoint(tmp_path / "text.pth")
    torch.save({"state_dict": {}}, tmp_path / "lightning.ckpt")
    with pytest.raises(ck.CheckpointError, match="s1 checkpoint"):
        ck.load_t2s_checkpoint(tmp_path / "lightning.ckpt")
    with pytest.raises(ck.CheckpointError, match="prefix"):
        ck.load_t2s_checkpoint(MODELS / SOVITS_FILES["v2"])


def test_v1_and_v3_sovits_files_are_refused_with_the_supported_versions_named(tmp_path):
    ckpt = ck.load_sovits_checkpoint(MODELS / SOVITS_FILES["v2"])
    v1 = {**ckpt.weight, "enc_p.text_embedding.weight": torch.zeros(322, 192, dtype=torch.float16)}
    ck.save_sovits_checkpoint(tmp_path / "v1.pth", v1, ckpt.config, ckpt.info, "v2")
    with pytest.raises(ck.CheckpointError, match=r"v1 SoVITS model; EchoDiary supports v2, v2Pro, v2ProPlus"):
        ck.load_sovits_checkpoint(tmp_path / "v1.pth")
    data = (MODELS / SOVITS_FILES["v2"]).read_bytes()
    (tmp_path / "v3.pth").write_bytes(b"02" + data[2:])
    with pytest.raises(ck.CheckpointError, match="v3"):
        ck.load_sovits_checkpoint(tmp_path / "v3.pth")


def test_hparams_behaves_like_upstreams_config_object():
    hp = ck.HParams(model={"gin_channels": 512, "version": "v2"}, name="exp")
    assert hp.model.gin_channels == 512 and hp["model"]["version"] == "v2"
    assert "model" in hp and "absent" not in hp and sorted(hp.keys()) == ["model", "name"]
    assert hp.to_dict() == {"model": {"gin_channels": 512, "version": "v2"}, "name": "exp"}
    assert ck.plain_config(hp) == hp.to_dict()
