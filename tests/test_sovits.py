"""engine.sovits: upstream parity, manifest shapes, decode lengths, chunked vocoding, random weights."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from engine.checkpoints import load_sovits_checkpoint, save_sovits_checkpoint
from engine.parity import check_s2
from engine.sovits import MultiPeriodDiscriminator, SoVITS, SoVITSConfig
from engine.sovits.loading import build_sovits, sovits_from_checkpoint
from engine.sovits.random_weights import random_discriminator_weights, random_sovits_weights

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "gpt-sovits"
FIXTURES = REFERENCE / "fixtures"
MANIFESTS = REFERENCE / "manifests"
VERSIONS = ["v2", "v2Pro", "v2ProPlus"]
SAMPLES_PER_TOKEN = 1280  # 2 frames of 640 samples at 32 kHz
CHUNK_BOUND = 1e-5  # vocode_chunked vs one generator call (overlap >= receptive field), relative to the peak


def manifest(name: str) -> list[tuple[str, tuple[int, ...]]]:
    data = json.loads((MANIFESTS / f"{name}.json").read_text())
    return [(t["key"], tuple(t["shape"])) for t in data["tensors"]]


def keys_and_shapes(module: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in module.state_dict().items()]


def tiny_model(version: str, seed: int = 0, with_posterior: bool = False) -> SoVITS:
    config = SoVITSConfig.tiny(version)
    weights = random_sovits_weights(config, seed, with_posterior=with_posterior)
    return build_sovits(config, weights, with_posterior=with_posterior).for_inference()


def voice_inputs(model: SoVITS, tokens: int, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    inputs = {
        "codes": torch.randint(0, 1024, (1, 1, tokens), generator=gen),
        "phones": torch.randint(0, 732, (1, max(1, tokens // 2)), generator=gen),
        "refer": torch.rand(1, 1025, 50, generator=gen) * 5,
        "sv_emb": None,
    }
    if model.config.is_pro:
        inputs["sv_emb"] = torch.rand(1, 20480, generator=gen) * 0.3
    return inputs


# -- parity with upstream ------------------------------------------------------------------------


def test_every_s2_golden_is_recomputed_within_tolerance():
    results = list(check_s2.check(FIXTURES))
    failed = [r.line() for r in results if not r.passed]
    assert not failed, "\n".join(failed)
    # one line per golden output and one version line per model: nothing is skipped
    expected = 0
    for version in VERSIONS:
        golden = load_file(str(FIXTURES / f"s2_{version}_golden.safetensors"))
        expected += 1 + sum(not key.startswith("in.") for key in golden)
    assert len(results) == expected


@pytest.mark.parametrize("version", VERSIONS)
def test_fixture_config_is_the_tiny_preset_and_weights_load_strictly(version):
    checkpoint = load_sovits_checkpoint(FIXTURES / "models" / f"s2G_{version}_tiny.pth")
    config = SoVITSConfig.from_checkpoint_config(checkpoint.config, checkpoint.version)
    assert config == SoVITSConfig.tiny(version)
    model = SoVITS(config, with_posterior=False)
    model.load_weights(checkpoint.weight)  # raises on any missing or unexpected key
    assert set(model.state_dict()) == set(checkpoint.weight)


def test_load_weights_rejects_missing_and_unexpected_keys():
    config = SoVITSConfig.tiny("v2")
    state = random_sovits_weights(config, 0, with_posterior=False)
    model = SoVITS(config)  # with enc_q: a file without enc_q.* is still accepted
    model.load_weights(state)
    missing = dict(state)
    del missing["dec.conv_post.weight"]
    with pytest.raises(ValueError, match="dec.conv_post.weight"):
        model.load_weights(missing)
    with pytest.raises(ValueError, match="sv_emb.weight"):
        model.load_weights({**state, "sv_emb.weight": torch.zeros(512, 20480)})


# -- shapes of the official files -------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_full_generator_has_exactly_the_manifest_keys_shapes_and_order(version):
    with torch.device("meta"):
        model = SoVITS(SoVITSConfig.full(version), with_posterior=True)
    assert keys_and_shapes(model) == manifest(f"s2G_{version}")


@pytest.mark.parametrize("version", VERSIONS)
def test_inference_generator_has_the_fine_tuned_file_keys(version):
    data = json.loads((MANIFESTS / f"s2G_{version}.json").read_text())
    fine_tuned = [(t["key"], tuple(t["shape"])) for t in data["tensors"] if t["in_fine_tuned_file"]]
    with torch.device("meta"):
        model = SoVITS(SoVITSConfig.full(version), with_posterior=False)
    assert keys_and_shapes(model) == fine_tuned
    assert sum(v.numel() for v in model.state_dict().values()) == data["fine_tuned_file"]["num_params"]


@pytest.mark.parametrize("version", VERSIONS)
def test_discriminator_has_exactly_the_manifest_keys_and_shapes(version):
    with torch.device("meta"):
        model = MultiPeriodDiscriminator(version)
    assert keys_and_shapes(model) == manifest(f"s2D_{version}")


@pytest.mark.parametrize("version", VERSIONS)
def test_full_config_round_trips_through_the_official_json(version):
    official = json.loads((MANIFESTS / f"s2G_{version}.json").read_text())["official_config_json"]
    config = SoVITSConfig.from_checkpoint_config(official, version)
    assert config == SoVITSConfig.full(version)
    model_dict = config.model_dict()
    assert {k: v for k, v in model_dict.items() if k != "version"} == official["model"]
    assert SoVITSConfig.from_checkpoint_config(config.checkpoint_config(), version) == config


# -- decoding ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("tokens", [1, 7, 30])
def test_decode_gives_1280_samples_per_token_at_speed_1(version, tokens):
    model = tiny_model(version)
    x = voice_inputs(model, tokens)
    with torch.inference_mode():
        wav = model.decode(x["codes"], x["phones"], x["refer"], 0.5, 1.0, x["sv_emb"], torch.Generator().manual_seed(0))
    assert wav.shape == (1, 1, tokens * SAMPLES_PER_TOKEN)
    assert wav.abs().max() <= 1.0 and wav.abs().max() > 0


@pytest.mark.parametrize("speed", [0.8, 1.25, 2.0])
def test_speed_resamples_to_int_frames_over_speed_plus_one(speed):
    model = tiny_model("v2")
    x = voice_inputs(model, 25)
    with torch.inference_mode():
        wav = model.decode(x["codes"], x["phones"], x["refer"], 0.0, speed)
    assert wav.shape[-1] == (int(50 / speed) + 1) * 640


def test_seeded_noise_comes_from_the_given_generator_only():
    model = tiny_model("v2")
    x = voice_inputs(model, 20)
    state = torch.get_rng_state()
    with torch.inference_mode():
        runs = [
            model.decode(x["codes"], x["phones"], x["refer"], 0.5, generator=torch.Generator().manual_seed(seed))
            for seed in (5, 5, 6)
        ]
        prior = model.prior(x["codes"], x["phones"], model.timbre(x["refer"]))
        latents = [model.latent(prior, None, 0.5, torch.Generator().manual_seed(seed)) for seed in (5, 6)]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])
    assert (latents[0] - latents[1]).abs().max() > 0.1
    assert torch.equal(torch.get_rng_state(), state)


def test_list_of_references_averages_timbre_vectors():
    model = tiny_model("v2Pro")
    a, b = voice_inputs(model, 10, seed=1), voice_inputs(model, 10, seed=2)
    with torch.inference_mode():
        ge = model.timbre([a["refer"], b["refer"]], [a["sv_emb"], b["sv_emb"]])
        expected = (model.timbre(a["refer"], a["sv_emb"]) + model.timbre(b["refer"], b["sv_emb"])) / 2
    torch.testing.assert_close(ge, expected)


def test_pro_models_need_the_speaker_vector():
    model = tiny_model("v2ProPlus")
    x = voice_inputs(model, 5)
    with pytest.raises(ValueError, match="sv_emb"), torch.inference_mode():
        model.decode(x["codes"], x["phones"], x["refer"], 0.0)


def test_cached_timbre_gives_the_same_audio():
    model = tiny_model("v2Pro")
    x = voice_inputs(model, 12)
    with torch.inference_mode():
        direct = model.decode(x["codes"], x["phones"], x["refer"], 0.0, sv_emb=x["sv_emb"])
        ge = model.timbre(x["refer"], x["sv_emb"])
        cached = model.decode(x["codes"], x["phones"], None, 0.0, ge=ge)
    assert torch.equal(direct, cached)


# -- chunked vocoding -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v2", "v2ProPlus"])
@pytest.mark.parametrize(("frames", "chunk"), [(97, 16), (130, 40), (64, 63)])
def test_vocode_chunked_matches_one_generator_call(version, frames, chunk):
    model = tiny_model(version, seed=3)
    gen = torch.Generator().manual_seed(frames)
    z = torch.randn(1, model.config.inter_channels, frames, generator=gen)
    ge = torch.randn(1, model.config.gin_channels, 1, generator=gen)
    overlap = model.receptive_field_frames()
    with torch.inference_mode():
        single = model.vocode(z, ge)
        chunked = model.vocode_chunked(z, ge, chunk, overlap)
    assert chunked.shape == single.shape
    assert (chunked - single).abs().max() <= CHUNK_BOUND * single.abs().max()


def test_generator_batches_items_independently():
    model = tiny_model("v2ProPlus", seed=8)
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(2, model.config.inter_channels, 23, generator=gen)
    ge = torch.randn(2, model.config.gin_channels, 1, generator=gen)
    with torch.inference_mode():
        both = model.vocode(z, ge)
        one_by_one = torch.cat([model.vocode(z[i : i + 1], ge[i : i + 1]) for i in range(2)])
    torch.testing.assert_close(both, one_by_one, atol=1e-6, rtol=1e-5)


def test_vocode_chunked_differs_when_the_overlap_is_too_short():
    model = tiny_model("v2", seed=3)
    z = torch.randn(1, model.config.inter_channels, 90, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        single = model.vocode(z, None)
        chunked = model.vocode_chunked(z, None, 30, 1)
    assert (chunked - single).abs().max() > 100 * CHUNK_BOUND * single.abs().max()


def test_decode_on_cpu_chunks_long_inputs_with_the_same_result():
    model = tiny_model("v2", seed=5)
    x = voice_inputs(model, 170)  # 340 frames: more than one CPU window
    with torch.inference_mode():
        auto = model.decode(x["codes"], x["phones"], x["refer"], 0.0)
        single = model.decode(x["codes"], x["phones"], x["refer"], 0.0, chunk_frames=None)
    assert auto.shape == single.shape == (1, 1, 170 * SAMPLES_PER_TOKEN)
    assert (auto - single).abs().max() <= CHUNK_BOUND * single.abs().max()


def test_inference_model_survives_deepcopy_and_dtype_moves_after_use():
    model = tiny_model("v2Pro", seed=6)
    x = voice_inputs(model, 8)
    with torch.inference_mode():
        first = model.decode(x["codes"], x["phones"], x["refer"], 0.0, sv_emb=x["sv_emb"])
        copied = copy.deepcopy(model).decode(x["codes"], x["phones"], x["refer"], 0.0, sv_emb=x["sv_emb"])
        model.to(torch.bfloat16).to(torch.float32)
        again = model.decode(x["codes"], x["phones"], x["refer"], 0.0, sv_emb=x["sv_emb"])
    assert torch.equal(first, copied)
    assert (again - first).abs().max() < 0.02 * first.abs().max()  # weights went through bfloat16


# -- weights ---------------------------------------------------------------------------------------------


def test_random_weights_are_seeded_and_complete():
    config = SoVITSConfig.tiny("v2Pro")
    a, b, c = (random_sovits_weights(config, seed) for seed in (1, 1, 2))
    assert list(a) == list(SoVITS(config).state_dict())
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["dec.conv_pre.weight"], c["dec.conv_pre.weight"])
    assert a["quantizer.vq.layers.0._codebook.inited"].item() == 1.0
    assert torch.equal(a["quantizer.vq.layers.0._codebook.embed_avg"], a["quantizer.vq.layers.0._codebook.embed"])


@pytest.mark.parametrize("version", VERSIONS)
def test_random_full_discriminator_matches_the_manifest(version):
    weights = random_discriminator_weights(version, "full", seed=0)
    assert [(k, tuple(v.shape)) for k, v in weights.items()] == manifest(f"s2D_{version}")


def test_tiny_discriminator_loads_and_scores_waveforms():
    model = MultiPeriodDiscriminator("v2Pro", channel_divisor=16)
    model.load_state_dict(random_discriminator_weights("v2Pro", "tiny", seed=0))
    y = torch.randn(2, 1, 4000, generator=torch.Generator().manual_seed(0)) * 0.1
    real, fake, fmap_real, fmap_fake = model(y, y.flip(-1))
    assert len(real) == len(fake) == 8  # one scale + seven periods
    assert all(r.shape[0] == 2 for r in real) and len(fmap_real[1]) == 6


def test_folding_weight_norm_keeps_outputs_and_official_keys():
    config = SoVITSConfig.tiny("v2")
    state = random_sovits_weights(config, 4, with_posterior=False)
    plain = SoVITS(config, with_posterior=False)
    plain.load_weights(state)
    plain.eval()
    folded = tiny_model("v2", seed=4)
    z = torch.randn(1, config.inter_channels, 20, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        torch.testing.assert_close(folded.vocode(z, None), plain.vocode(z, None), atol=1e-6, rtol=1e-5)
    saved = folded.state_dict()
    assert list(saved) == list(state) and all(torch.equal(saved[k], state[k]) for k in state)
    # loading new weights into a folded model refolds
    other = random_sovits_weights(config, 5, with_posterior=False)
    folded.load_weights(other)
    plain.load_weights(other)
    with torch.inference_mode():
        torch.testing.assert_close(folded.vocode(z, None), plain.vocode(z, None), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("version", VERSIONS)
def test_saved_file_reloads_with_the_same_voice(tmp_path, version):
    config = SoVITSConfig.tiny(version)
    model = SoVITS(config, with_posterior=False)
    model.load_weights({k: v.half().float() for k, v in random_sovits_weights(config, 7, False).items()})
    model.for_inference()
    path = tmp_path / "voice.pth"
    save_sovits_checkpoint(path, model.state_dict(), config.checkpoint_config(), "1epoch_2iteration", version)
    reloaded = sovits_from_checkpoint(load_sovits_checkpoint(path))
    assert reloaded.config == config
    x = voice_inputs(model, 9)
    with torch.inference_mode():
        a = model.decode(x["codes"], x["phones"], x["refer"], 0.0, sv_emb=x["sv_emb"])
        b = reloaded.decode(x["codes"], x["phones"], x["refer"], 0.0, sv_emb=x["sv_emb"])
    assert torch.equal(a, b)


def test_half_precision_decode_stays_close_to_float32():
    model = tiny_model("v2Pro", seed=2)
    x = voice_inputs(model, 15)
    with torch.inference_mode():
        ref = model.decode(x["codes"], x["phones"], x["refer"], 0.0, sv_emb=x["sv_emb"])
        half = model.to(torch.float16).decode(x["codes"], x["phones"], x["refer"], 0.0, sv_emb=x["sv_emb"])
    assert half.dtype == torch.float16
    assert (half.float() - ref).abs().max() < 0.02 * ref.abs().max()


def test_training_forward_reaches_every_trainable_module():
    model = SoVITS(SoVITSConfig.tiny("v2Pro"), with_posterior=True)
    model.load_weights(random_sovits_weights(model.config, 0, with_posterior=True))
    gen = torch.Generator().manual_seed(0)
    frames = 40
    out = model(
        ssl=torch.randn(2, 768, frames, generator=gen),
        spec=torch.rand(2, 1025, frames, generator=gen),
        spec_lengths=torch.tensor([frames, frames - 6]),
        phones=torch.randint(0, 732, (2, 12), generator=gen),
        phones_lengths=torch.tensor([12, 9]),
        sv_emb=torch.rand(2, 20480, generator=gen),
        generator=gen,
    )
    assert out.wav.shape == (2, 1, model.config.segment_size)
    loss = out.wav.abs().mean() + (out.z_p - out.m_p).pow(2).mean() + out.logs_q.mean()
    loss.backward()
    for name in ("enc_q.pre.weight", "flow.flows.0.enc.cond_layer.weight_v", "dec.ups.0.weight_g",
                 "enc_p.mrte.c_post.weight", "ref_enc.fc.fc.weight", "sv_emb.weight"):  # fmt: skip
        assert model.get_parameter(name).grad is not None, name
    assert model.ssl_proj.weight.grad is None  # frozen, as upstream
