"""The CPU kernels of the GPT and BERT: chosen from the CPU's instruction set, close to float32, never used in training."""

from __future__ import annotations

import pytest
import torch

from engine.decoding import DecodingOptions, T2SRequest, decode, new_generator, teacher_forced_logits
from engine.features.bert import BertFeatures, write_random_bert
from engine.kernels import choose_mode, cpu_offers, use_kernels
from engine.t2s import T2SConfig, Text2SemanticGPT, random_t2s_weights

CPU = torch.device("cpu")
SMALL = T2SConfig(hidden_dim=128, num_heads=4, num_layers=4)
HAS_AVX2 = "avx2" in cpu_offers()


def test_auto_takes_int8_on_every_avx2_cpu_and_exact_on_older_ones():
    assert choose_mode("auto", CPU, torch.float32, {"avx2", "avx512", "amx", "avx512_bf16", "vnni"}) == "int8"
    assert choose_mode("auto", CPU, torch.float32, {"avx2", "avx512", "vnni"}) == "int8"
    assert choose_mode("auto", CPU, torch.float32, {"avx2"}) == "int8"
    assert choose_mode("auto", CPU, torch.float32, set()) == "exact"


def test_gpus_and_half_models_keep_exact_kernels_and_a_named_mode_is_kept():
    assert choose_mode("auto", torch.device("cuda"), torch.float16, {"amx"}) == "exact"
    assert choose_mode("bf16", CPU, torch.float16, {"avx2"}) == "exact"
    assert choose_mode("exact", CPU, torch.float32, {"amx"}) == "exact"
    assert choose_mode("int8", CPU, torch.float32, {"amx"}) == "int8"
    with pytest.raises(ValueError, match="auto, exact, bf16, int8"):
        choose_mode("fp8", CPU, torch.float32)


@pytest.fixture(scope="module")
def model() -> Text2SemanticGPT:
    return Text2SemanticGPT.from_state_dict(SMALL, random_t2s_weights(SMALL, seed=5))


@pytest.fixture(scope="module")
def request_and_tokens(model: Text2SemanticGPT) -> tuple[T2SRequest, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    phones = torch.randint(0, 732, (40,), generator=gen)
    request = T2SRequest(phones, 0.5 * torch.randn(1024, 40, generator=gen), torch.randint(0, 1024, (30,), generator=gen))
    model.use_matmul("exact")
    tokens = decode(model, [request], DecodingOptions(max_steps=80), new_generator(0))[0].tokens
    return request, tokens


def kl_from(reference: torch.Tensor, other: torch.Tensor) -> float:
    p, q = reference.log_softmax(-1), other.log_softmax(-1)
    return float((p.exp() * (p - q)).sum(-1).mean())


@pytest.mark.parametrize(
    "mode, max_kl",
    [("bf16", 5e-5), pytest.param("int8", 3e-4, marks=pytest.mark.skipif(not HAS_AVX2, reason="fbgemm needs AVX2"))],
)
def test_fast_kernels_stay_close_to_float32_on_the_same_sequence(model, request_and_tokens, mode, max_kl):
    request, tokens = request_and_tokens
    exact = teacher_forced_logits(model.use_matmul("exact"), request, tokens)
    fast = teacher_forced_logits(model.use_matmul(mode), request, tokens)
    model.use_matmul("exact")
    assert not torch.equal(exact, fast)  # the kernels really ran
    assert kl_from(exact, fast) < max_kl
    assert float((exact.argmax(-1) == fast.argmax(-1)).float().mean()) > 0.9


@pytest.mark.parametrize("mode", ["bf16", pytest.param("int8", marks=pytest.mark.skipif(not HAS_AVX2, reason="AVX2"))])
def test_a_fast_mode_decodes_a_batch_and_leaves_the_weights_as_loaded(model, mode):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(2)
    requests = [T2SRequest(torch.randint(0, 732, (n,), generator=gen), torch.randn(1024, n, generator=gen),
                           torch.randint(0, 1024, (9,), generator=gen), max_new_tokens=20) for n in (7, 19)]  # fmt: skip
    results = decode(model.use_matmul(mode), requests, DecodingOptions(), new_generator(0))
    model.use_matmul("exact")
    assert [len(r.tokens) > 0 for r in results] == [True, True]
    assert all(int(r.tokens.max()) < SMALL.vocab_size for r in results)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_training_takes_the_exact_path_even_with_fast_kernels_set(model):
    x = torch.randn(1, 5, SMALL.hidden_dim)
    layer = model.h.layers[0].linear1
    exact = torch.nn.functional.linear(x, layer.weight, layer.bias)
    model.use_matmul("bf16")
    try:
        with torch.enable_grad():
            trained = layer(x)
        with torch.inference_mode():
            served = layer(x)
    finally:
        model.use_matmul("exact")
    assert torch.equal(trained, exact) and trained.requires_grad
    assert not torch.equal(served, exact)


@pytest.mark.parametrize("mode", ["bf16", pytest.param("int8", marks=pytest.mark.skipif(not HAS_AVX2, reason="AVX2"))])
def test_bert_features_with_fast_kernels_stay_close_and_exact_gives_them_back(tmp_path, mode):
    bert = BertFeatures.load(write_random_bert(tmp_path / "chinese-roberta-wwm-ext-large", "tiny", seed=3))
    text, word2ph = "今天下午我们去公园散步,天气很好.", [2] * 10 + [1] + [2] * 5 + [1]
    exact = bert.features(text, word2ph)
    use_kernels(bert.model, mode)
    fast = bert.features(text, word2ph)
    use_kernels(bert.model, "exact")
    assert not torch.equal(exact, fast)
    cosine = torch.nn.functional.cosine_similarity(exact, fast, dim=0)
    assert float(cosine.min()) > 0.9999
    assert torch.equal(bert.features(text, word2ph), exact)
