"""Fine-tuning on tiny random models: data preparation, both training stages, files, cancel, refusals."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from engine import finetune as ft
from engine.checkpoints import load_sovits_checkpoint, load_t2s_checkpoint
from engine.errors import BadReference, BadText, Cancelled
from engine.facade import Engine
from engine.params import RenderParams
from engine.sovits.config import SoVITSConfig
from engine.sovits.model import SoVITS
from engine.t2s import T2SConfig, Text2SemanticGPT, random_t2s_weights
from engine.training import gpt as s1
from engine.training import sovits as s2


def voiced(seconds: float, f0: float, sr: int = 32000, seed: int = 0) -> np.ndarray:
    """A harmonic, wobbling, enveloped signal: voice-like enough for the feature extractors."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / sr
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t) ** 2
    return (0.3 * wave * envelope + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def wav_bytes(samples: np.ndarray, sr: int = 32000) -> bytes:
    buf = io.BytesIO()
    soundfile.write(buf, samples, sr, format="WAV")
    return buf.getvalue()


ITEMS = [
    (wav_bytes(voiced(1.5, 140, seed=1)), "今天天气很好。", "zh"),
    (wav_bytes(voiced(1.8, 200, sr=44100, seed=2), 44100), "我们去公园。", "zh"),
]
PARAMS = {"sovits_epochs": 1, "gpt_epochs": 2}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.model_files import init_random

    root = tmp_path_factory.mktemp("finetune-models")
    init_random(root, size="tiny", version="v2", seed=0)
    return root


@pytest.fixture(scope="module")
def pretrained(tiny_models: Path) -> tuple[SoVITS, torch.nn.Module, list]:
    paths = ft.find_models(tiny_models)
    generator, disc, _ = ft.load_trainable_sovits(paths, torch.device("cpu"))
    data = ft.prepare(paths, ITEMS, generator, torch.device("cpu"))
    return generator, disc, data


@pytest.fixture(scope="module")
def finetuned(tiny_models: Path) -> tuple[bytes, list[tuple[int, int]]]:
    progress: list[tuple[int, int]] = []
    data = ft.finetune(tiny_models, ITEMS, params=PARAMS, device="cpu",
                       on_progress=lambda done, total: progress.append((done, total)))  # fmt: skip
    return data, progress


def test_prepared_items_line_up(pretrained):
    generator, _, data = pretrained
    for item, seconds in zip(data, (1.5, 1.8), strict=True):
        frames = item.spec.shape[-1]
        assert item.spec.shape[0] == 1025 and abs(frames - seconds * 50) <= 2
        assert item.ssl.shape == (768, frames)  # HuBERT aligned to the spectrogram grid
        assert item.codes.shape == (frames // 2,) and int(item.codes.min()) >= 0 and int(item.codes.max()) < 1024
        assert torch.equal(item.codes, generator.extract_latent(item.ssl[None])[0, 0])
        assert item.bert.shape == (1024, item.phone_ids.numel()) and item.phone_ids.numel() > 4
        # upstream's int16 copy: peak about 0.95 * 0.5 + 0.5 * the original peak, below full scale
        assert 0.5 < float(item.wav.abs().max()) < 1.0
        assert item.sv_emb is None  # v2 has no speaker model


def fresh_trainer(pretrained, seed: int = 0, lr: float = 2e-4) -> s2.SoVITSTrainer:
    generator, disc, _ = pretrained
    return s2.SoVITSTrainer(copy.deepcopy(generator), copy.deepcopy(disc), lr=lr, seed=seed)


def test_sovits_steps_reduce_the_reconstruction_loss_and_keep_frozen_parts(pretrained):
    _, _, data = pretrained
    batch = s2.collate(data)
    trainer = fresh_trainer(pretrained)
    frozen = {k: v.clone() for k, v in trainer.g.state_dict().items() if k.startswith(("ssl_proj.", "quantizer."))}
    before = trainer.evaluate(batch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        losses = [trainer.step(batch) for _ in range(3)]
    after = trainer.evaluate(batch)
    assert after < 0.9 * before, (before, after, losses)
    assert all(np.isfinite(v) for loss in losses for v in vars(loss).values())
    state = trainer.g.state_dict()
    assert all(torch.equal(state[k], v) for k, v in frozen.items())
    text_lr = {id(p) for p in trainer.opt_g.param_groups[1]["params"]}
    assert {id(p) for n, p in trainer.g.named_parameters() if n.startswith("enc_p.mrte.")} <= text_lr
    assert trainer.opt_g.param_groups[1]["lr"] == pytest.approx(0.4 * trainer.opt_g.param_groups[0]["lr"])


def test_sovits_step_is_deterministic_for_a_seed(pretrained):
    batch = s2.collate(pretrained[2][:1])
    runs = []
    for _ in range(2):
        trainer = fresh_trainer(pretrained, seed=5)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(5)
            runs.append(trainer.step(batch))
    assert runs[0] == runs[1]


def test_gpt_steps_reduce_the_loss_deterministically(tiny_models, pretrained):
    examples = [s1.S1Example.of(item) for item in pretrained[2]]
    results = []
    for _ in range(2):
        gpt = Text2SemanticGPT.from_checkpoint(load_t2s_checkpoint(ft.find_models(tiny_models).gpt), half_weights=False)
        trainer = s1.GPTTrainer(gpt, lr=1e-3)
        before = trainer.evaluate(examples)
        steps = [trainer.step(examples[i % 2]) for i in range(8)]
        results.append((before, trainer.evaluate(examples), steps))
    before, after, steps = results[0]
    assert after < 0.9 * before, (before, after, steps)
    assert results[0] == results[1]


def test_gpt_loss_counts_every_token_and_eos(pretrained):
    item = pretrained[2][0]
    gpt = Text2SemanticGPT(T2SConfig.tiny())
    gpt.load_state_dict(random_t2s_weights(T2SConfig.tiny(), seed=0))  # parameters start uninitialised
    torch.nn.init.zeros_(gpt.ar_predict_layer.weight)  # uniform logits: each target costs log(vocab)
    with torch.no_grad():
        loss = s1.sequence_loss(gpt, s1.S1Example.of(item))
    # N codes give N targets: codes[1:] and EOS
    assert float(loss) == pytest.approx(item.codes.numel() * np.log(gpt.config.vocab_size), rel=1e-5)


def test_finetune_writes_official_files_that_load_strictly(tiny_models, finetuned):
    data, progress = finetuned
    total = len(ITEMS) * (PARAMS["sovits_epochs"] + PARAMS["gpt_epochs"])
    assert progress == [(i, total) for i in range(1, total + 1)]
    meta, sovits_bytes, gpt_bytes = ft.unpack(data)
    assert meta["version"] == "v2" and meta["sovits_steps"] == 2 and meta["gpt_steps"] == 4
    assert sovits_bytes[:2] == b"PK"  # v2 fine-tuned files are plain zips
    tmp = tiny_models / "loaded"
    tmp.mkdir(exist_ok=True)
    (tmp / "s.pth").write_bytes(sovits_bytes)
    (tmp / "g.ckpt").write_bytes(gpt_bytes)
    s2_ckpt = load_sovits_checkpoint(tmp / "s.pth")
    assert s2_ckpt.version == "v2" and not s2_ckpt.has_posterior_encoder
    assert all(v.dtype == torch.float16 for v in s2_ckpt.weight.values())
    model = SoVITS(SoVITSConfig.from_checkpoint_config(s2_ckpt.config, s2_ckpt.version), with_posterior=False)
    model.load_weights(s2_ckpt.weight)
    base = load_sovits_checkpoint(ft.find_models(tiny_models).sovits).weight
    assert not torch.equal(s2_ckpt.weight["dec.conv_post.weight"], base["dec.conv_post.weight"])
    assert torch.equal(s2_ckpt.weight["ssl_proj.weight"], base["ssl_proj.weight"])
    gpt_ckpt = load_t2s_checkpoint(tmp / "g.ckpt")
    Text2SemanticGPT.from_checkpoint(gpt_ckpt)  # strict
    base_gpt = load_t2s_checkpoint(ft.find_models(tiny_models).gpt).weight
    assert not torch.equal(gpt_ckpt.weight["model.ar_predict_layer.weight"], base_gpt["model.ar_predict_layer.weight"])


def test_pro_files_carry_their_header(tmp_path):
    config = SoVITSConfig.tiny("v2Pro")
    generator = SoVITS(config, with_posterior=True)
    gpt = Text2SemanticGPT(T2SConfig.tiny())
    data = ft.pack(generator, config.checkpoint_config(), "1epoch_1iteration", gpt, T2SConfig.tiny().checkpoint_config(),
                   "GPT-e1", {"format": ft.FORMAT, "version": "v2Pro"})  # fmt: skip
    _, sovits_bytes, _ = ft.unpack(data)
    assert sovits_bytes[:2] == b"05"
    (tmp_path / "s.pth").write_bytes(sovits_bytes)
    ckpt = load_sovits_checkpoint(tmp_path / "s.pth")
    assert ckpt.version == "v2Pro" and not ckpt.has_posterior_encoder


@pytest.fixture(scope="module")
def base(tiny_models: Path) -> Engine:
    return Engine.load(tiny_models, device="cpu", precision="fp32")


def test_render_with_the_fine_tuned_models(tiny_models, finetuned, base):
    data, _ = finetuned
    models = ft.load_finetuned(tiny_models, data, device="cpu", precision="fp32", base=base.models)
    assert models.hubert is base.models.hubert and models.model_id != base.models.model_id
    engine = Engine(models)
    clip, transcript = wav_bytes(voiced(4.0, 150, seed=3)), "今天天气很好，我们去公园散步。"
    voice = engine.enroll(clip, transcript, "zh")
    result = engine.render("我今天很开心。", voice, RenderParams(seed=1, max_retries=0))
    assert result.audio.size > 0 and np.isfinite(result.audio).all()
    # ssl_proj and the codebook stay frozen, so a voice's prompt tokens are the base models' ones
    base_voice = base.enroll(clip, transcript, "zh")
    assert torch.equal(voice.prompt_semantic, base_voice.prompt_semantic)


def test_cancel_stops_between_steps(tiny_models, base):
    progress: list[tuple[int, int]] = []
    with pytest.raises(Cancelled, match="after 1 of 6 steps"):
        ft.finetune(tiny_models, ITEMS, params=PARAMS, device="cpu",
                    on_progress=lambda done, total: progress.append((done, total)),
                    should_cancel=lambda: len(progress) >= 1, base=base.models)  # fmt: skip
    assert progress == [(1, 6)]


@pytest.mark.parametrize(
    ("items", "error", "message"),
    [
        ([(wav_bytes(voiced(0.4, 150)), "很好。", "zh")], BadReference, "0.4 s long"),
        ([(wav_bytes(np.zeros(32000 * 2, np.float32)), "很好。", "zh")], BadReference, "silent"),
        ([(b"not audio", "很好。", "zh")], BadReference, "could not read"),
        ([ITEMS[0], (ITEMS[1][0], "  ", "zh")], BadText, "recording 2 is empty"),
        ([], BadReference, "at least one recording"),
    ],
)
def test_unusable_items_are_refused_clearly(tiny_models, items, error, message):
    with pytest.raises(error, match=message):
        ft.finetune(tiny_models, items, params=PARAMS, device="cpu")


def test_unknown_parameters_are_refused(tiny_models):
    with pytest.raises(ValueError, match="unknown fine-tuning parameters"):
        ft.finetune(tiny_models, ITEMS, params={"epochs": 3}, device="cpu")


def test_bytes_that_are_not_fine_tuned_weights_are_refused(tiny_models, base):
    from engine.errors import EngineError

    with pytest.raises(EngineError, match="not EchoDiary fine-tuned weights"):
        ft.load_finetuned(tiny_models, b"PK junk", base=base.models)
