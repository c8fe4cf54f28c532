"""The text-to-semantic GPT and its decoder: upstream parity, official key layout, batching, seeding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.checkpoints import load_t2s_checkpoint
from engine.decoding import (
    CACHE_CHUNK,
    DecodingOptions,
    T2SRequest,
    decode,
    infer_panel_batch_infer,
    infer_panel_naive,
    new_generator,
)
from engine.parity import check_s1
from engine.t2s import T2SConfig, Text2SemanticGPT, random_t2s_weights

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "gpt-sovits"
FIXTURES = REFERENCE / "fixtures"
GREEDY = DecodingOptions(top_k=1, top_p=1.0, temperature=1.0, repetition_penalty=1.35)
SAMPLING = DecodingOptions(top_k=15, top_p=0.9, temperature=1.0, repetition_penalty=1.35)
SMALL = T2SConfig(hidden_dim=64, num_heads=4, num_layers=3)


@pytest.fixture(scope="module")
def fixture_model() -> Text2SemanticGPT:
    return Text2SemanticGPT.from_checkpoint(load_t2s_checkpoint(FIXTURES / "models" / "s1_tiny.ckpt"))


@pytest.fixture(scope="module")
def small_model() -> Text2SemanticGPT:
    return Text2SemanticGPT.from_state_dict(SMALL, random_t2s_weights(SMALL, seed=3))


def make_requests(n: int, seed: int, caps: list[int], shared_prompt: bool = False) -> list[T2SRequest]:
    """Items of different phone and prompt lengths (one reference-free when prompts differ)."""
    gen = torch.Generator().manual_seed(seed)
    common = torch.randint(0, 1024, (9,), generator=gen)
    requests = []
    for i in range(n):
        length = 5 + 7 * i % 23
        phones = torch.randint(0, 732, (length,), generator=gen)
        bert = 0.5 * torch.randn(1024, length, generator=gen)
        if shared_prompt:
            prompt = common
        else:
            prompt = None if i == 1 else torch.randint(0, 1024, (3 + 5 * i % 11,), generator=gen)
        requests.append(T2SRequest(phones, bert, prompt, max_new_tokens=caps[i]))
    return requests


def test_s1_goldens_pass():
    results = list(check_s1.check(FIXTURES))
    failed = [r.line() for r in results if not r.passed]
    assert len(results) >= 20 and not failed, failed


def test_full_size_model_has_exactly_the_official_keys_and_shapes():
    manifest = json.loads((REFERENCE / "manifests" / "s1_gpt_v2.json").read_text())
    with torch.device("meta"):
        model = Text2SemanticGPT(T2SConfig.full())
    ours = {"model." + k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == {t["key"]: t["shape"] for t in manifest["tensors"]}
    assert sum(v.numel() for v in model.state_dict().values()) == manifest["num_params"]
    assert T2SConfig.from_config(manifest["official_config_yaml"]) == T2SConfig.full()


def test_random_weights_load_strictly_and_are_seeded():
    a, b, c = (random_t2s_weights(T2SConfig.tiny(), s) for s in (1, 1, 2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["ar_predict_layer.weight"], c["ar_predict_layer.weight"])
    Text2SemanticGPT(T2SConfig.tiny()).load_state_dict(a, strict=True)


@pytest.mark.parametrize("model_name", ["fixture_model", "small_model"])
def test_greedy_batched_decoding_equals_decoding_each_item_alone(request, model_name):
    model = request.getfixturevalue(model_name)
    requests = make_requests(4, seed=11, caps=[37, 12, 60, 25])
    batched = decode(model, requests, GREEDY, new_generator(0), record_logits=True)
    for item, together in zip(requests, batched, strict=True):
        alone = decode(model, [item], GREEDY, new_generator(0), record_logits=True)[0]
        assert torch.equal(together.tokens, alone.tokens)
        assert together.hit_cap == alone.hit_cap
        assert len(together.step_logits) == len(alone.step_logits)
        for a, b in zip(together.step_logits, alone.step_logits, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)  # padding is invisible


def test_batched_decoding_beyond_the_first_cache_chunk(small_model):
    requests = make_requests(3, seed=5, caps=[CACHE_CHUNK + 40, 30, CACHE_CHUNK + 5], shared_prompt=True)
    batched = decode(small_model, requests, GREEDY, new_generator(0))
    alone = [decode(small_model, [r], GREEDY, new_generator(0))[0] for r in requests]
    assert [r.tokens.tolist() for r in batched] == [r.tokens.tolist() for r in alone]


def test_cap_per_item_is_honoured_and_reported(small_model):
    requests = make_requests(3, seed=2, caps=[4, 19, 33])
    results = decode(small_model, requests, SAMPLING, new_generator(1))
    for r, cap in zip(results, [4, 19, 33], strict=True):
        assert len(r.tokens) <= cap
        assert r.hit_cap == (len(r.tokens) == cap)
        assert r.tokens.dtype == torch.long and int(r.tokens.max()) < SMALL.eos


def test_same_seed_same_tokens_and_different_seeds_differ(small_model):
    requests = make_requests(3, seed=7, caps=[40, 40, 40])
    first = decode(small_model, requests, SAMPLING, new_generator(123))
    second = decode(small_model, requests, SAMPLING, new_generator(123))
    other = decode(small_model, requests, SAMPLING, new_generator(124))
    assert [r.tokens.tolist() for r in first] == [r.tokens.tolist() for r in second]
    assert [r.tokens.tolist() for r in first] != [r.tokens.tolist() for r in other]


def test_no_state_leaks_between_calls_and_global_rng_untouched(small_model):
    before_params = {k: v.clone() for k, v in small_model.state_dict().items()}
    rng = torch.get_rng_state()
    a = make_requests(2, seed=8, caps=[30, 30])
    b = make_requests(5, seed=9, caps=[50, 10, 20, 5, 45])
    first = decode(small_model, a, SAMPLING, new_generator(5))
    decode(small_model, b, SAMPLING, new_generator(6))
    decode(small_model, b[:1], GREEDY, new_generator(7))
    again = decode(small_model, a, SAMPLING, new_generator(5))
    assert [r.tokens.tolist() for r in first] == [r.tokens.tolist() for r in again]
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, before_params[k]) for k, v in small_model.state_dict().items())


def test_eos_cannot_end_the_first_eleven_steps(fixture_model):
    # Make EOS overwhelmingly likely: it still cannot be chosen before step 11.
    requests = make_requests(2, seed=4, caps=[100, 100])

    def push_eos(logits, items, step):
        logits[:, fixture_model.config.eos] = 1e4

    results = decode(fixture_model, requests, GREEDY, new_generator(0), logits_hook=push_eos)
    assert [len(r.tokens) for r in results] == [11, 11] and not any(r.hit_cap for r in results)


def test_upstream_loops_lose_different_tokens_at_early_stop(small_model):
    gen = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, 1024, (1, 6), generator=gen)
    phones = torch.randint(0, 732, (1, 9), generator=gen)
    bert = torch.randn(1, 1024, 9, generator=gen)
    options = DecodingOptions(top_k=1, repetition_penalty=1.35, early_stop_num=20)
    y, idx = infer_panel_naive(small_model, phones, prompt, bert, options, new_generator(0))
    y_list, idx_list = infer_panel_batch_infer(small_model, [phones[0]], prompt, [bert[0]], options, new_generator(0))
    if idx < 20:
        pytest.skip("this random model stopped by EOS before the early stop")
    new = y[0, 6:]
    assert len(new) == 21 and idx == idx_list[0] == 20
    assert torch.equal(y_list[0][6:], new[:-1])  # batch keeps y[:-1]: the last token is lost
    assert torch.equal(y[0, -idx:], new[1:])  # naive's caller keeps y[-idx:]: the first one is lost


def test_padding_columns_of_the_cache_hold_finite_values():
    from engine.kv_cache import KVCache

    cache = KVCache.allocate(SMALL, rows=2, capacity=16, device=torch.device("cpu"), dtype=torch.float32)
    cache.kv[:, 0].fill_(float("nan"))
    cache.kv[:, 1].fill_(float("inf"))
    cache.pad_left([5, 0])
    assert torch.isfinite(cache.kv[:, :, 0, :, :5]).all()
    assert torch.isinf(cache.pad_bias[0, 0, 0, :5]).all() and (cache.pad_bias[0, 0, 0, 5:] == 0).all()
    assert (cache.pad_bias[1] == 0).all()


def test_random_model_written_as_official_file_loads_back_strictly(tmp_path):
    from engine.checkpoints import save_t2s_checkpoint

    config = T2SConfig.tiny()
    weights = random_t2s_weights(config, seed=4)
    save_t2s_checkpoint(tmp_path / "s1.ckpt", weights, config.checkpoint_config(), "GPT-e1")
    ckpt = load_t2s_checkpoint(tmp_path / "s1.ckpt")
    assert T2SConfig.from_config(ckpt.config) == config
    model = Text2SemanticGPT.from_checkpoint(ckpt)
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key].half().float()), key


def test_half_stored_weights_give_bit_identical_decoding():
    ckpt = load_t2s_checkpoint(FIXTURES / "models" / "s1_tiny.ckpt")
    half = Text2SemanticGPT.from_checkpoint(ckpt, half_weights=True)
    full = Text2SemanticGPT.from_checkpoint(ckpt)
    assert half.h.layers[0].linear1.weight.dtype == torch.float16 and half.dtype == torch.float32
    assert full.h.layers[0].linear1.weight.dtype == torch.float32
    requests = make_requests(3, seed=21, caps=[40, 25, 33])
    ours = decode(half, requests, SAMPLING, new_generator(9), record_logits=True)
    reference = decode(full, requests, SAMPLING, new_generator(9), record_logits=True)
    for a, b in zip(ours, reference, strict=True):
        assert torch.equal(a.tokens, b.tokens)
        assert all(torch.equal(x, y) for x, y in zip(a.step_logits, b.step_logits, strict=True))


def test_decoding_options_reject_values_upstream_would_crash_on():
    with pytest.raises(ValueError, match="top_k"):
        DecodingOptions(top_k=0)
    with pytest.raises(ValueError, match="top_p"):
        DecodingOptions(top_p=0.0)
    assert DecodingOptions(early_stop_num=30).max_new_tokens == 31
    assert DecodingOptions(early_stop_num=-1).max_new_tokens == 1500


# --- continuous batching: more requests than rows, the next one entering when a row stops ---------


def _request(gen: torch.Generator, phones: int, prompt: int, cap: int) -> T2SRequest:
    return T2SRequest(torch.randint(0, 732, (phones,), generator=gen), 0.5 * torch.randn(1024, phones, generator=gen),
                      torch.randint(0, 1024, (prompt,), generator=gen) if prompt else None, max_new_tokens=cap)


def _no_eos(logits, items, sampled):
    logits[:, SMALL.eos] = -1e9  # only the caps end a row: the schedule below is exact


def test_refilled_greedy_decoding_equals_decoding_each_item_alone(small_model, monkeypatch):
    from engine.kv_cache import KVCache

    gen = torch.Generator().manual_seed(13)
    # Two rows: A runs long; B stops early and C, whose prefix (60) is longer than the cache then (10 +
    # 12 steps), enters and moves the rows right; later ones enter behind ever more padding, so once A
    # stops, every live row's first columns are padding and the cache is compacted.
    specs = [(6, 4, CACHE_CHUNK + 60), (10, 0, 12), (45, 15, 30), (3, 0, 50), (20, 9, 140), (12, 6, 200), (8, 0, 25)]
    requests = [_request(gen, phones, prompt, cap) for phones, prompt, cap in specs]
    moved, dropped = [], []  # prefixes longer than the cache when they entered; columns compaction dropped
    add_row, compact = KVCache.add_row, KVCache.compact

    def counted_add_row(self, prefix):
        moved.extend([prefix - self.length] if self.rows and prefix > self.length else [])
        return add_row(self, prefix)

    def counted_compact(self, *args):
        before = self.length
        compact(self, *args)
        dropped.extend([before - self.length] if self.length < before else [])

    monkeypatch.setattr(KVCache, "add_row", counted_add_row)
    monkeypatch.setattr(KVCache, "compact", counted_compact)
    refilled = decode(small_model, requests, GREEDY, new_generator(0), logits_hook=_no_eos, record_logits=True,
                      width=2)
    assert moved == [60 - 22] and dropped and min(dropped) > CACHE_CHUNK
    for item, together in zip(requests, refilled, strict=True):
        alone = decode(small_model, [item], GREEDY, new_generator(0), logits_hook=_no_eos, record_logits=True)[0]
        assert torch.equal(together.tokens, alone.tokens) and together.hit_cap and alone.hit_cap
        assert len(together.tokens) == item.max_new_tokens
        for a, b in zip(together.step_logits, alone.step_logits, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)  # padding, moves and compaction are invisible


def test_refill_keeps_request_indices_and_per_item_caps_and_counts(small_model):
    gen = torch.Generator().manual_seed(17)
    budgets = [15, 40, 12, 30, 22, 17, 60, 11]  # EOS made certain once an item has this many tokens
    caps = [60, 25, 60, 10, 60, 60, 35, 60]
    requests = [_request(gen, 4 + 5 * i, 3 * (i % 3), cap) for i, cap in enumerate(caps)]
    seen: dict[int, list[int]] = {}
    rows: list[int] = []

    def eos_after_budget(logits, items, sampled):
        rows.append(len(items))
        for item, count in zip(items.tolist(), sampled.tolist(), strict=True):
            seen.setdefault(item, []).append(count)
        budget = torch.tensor(budgets)[items]
        logits[:, SMALL.eos] = torch.where(budget <= sampled, 1e4, -1e4)

    results = decode(small_model, requests, SAMPLING, new_generator(3), logits_hook=eos_after_budget, width=3)
    for i, result in enumerate(results):
        assert (len(result.tokens), result.hit_cap) == ((caps[i], True) if caps[i] <= budgets[i] else (budgets[i], False))
        assert seen[i] == list(range(len(seen[i])))  # the hook saw item i's own count, step after step
        assert len(seen[i]) == min(caps[i], budgets[i] + 1)
    assert max(rows) == 3 and rows.count(3) > len(rows) // 2


def test_a_row_entering_the_cache_pads_with_finite_zeros_and_compaction_drops_shared_padding():
    from engine.kv_cache import KVCache

    cache = KVCache.allocate(SMALL, rows=3, capacity=16, device=torch.device("cpu"), dtype=torch.float32)
    cache.kv.fill_(float("nan"))
    cache.keep([0])
    cache.pad_left([0])
    cache.kv[:, :, 0, :, :6] = 1.0
    cache.advance(6)
    cache.add_row(4).kv[:, :, :, :, :4] = 2.0  # written through its view: columns 2..5 of row 1
    assert cache.rows == 2 and cache.starts == [0, 2]
    assert (cache.kv[:, :, 1, :, :2] == 0).all() and (cache.kv[:, :, 1, :, 2:6] == 2).all()
    assert torch.isinf(cache.pad_bias[1, 0, 0, :2]).all() and (cache.pad_bias[1, 0, 0, 2:] == 0).all()
    assert (cache.pad_bias[0] == 0).all()
    cache.add_row(9).kv[:, :, :, :, :9] = 3.0  # longer than the cache: rows 0 and 1 move right by 3
    assert cache.length == 9 and cache.starts == [3, 5, 0]
    assert torch.isfinite(cache.kv[:, :, :, :, :9]).all()
    assert (cache.kv[:, :, 0, :, 3:9] == 1).all() and (cache.kv[:, :, 1, :, 5:9] == 2).all()
    assert [int(torch.isinf(cache.pad_bias[r, 0, 0, :9]).sum()) for r in range(3)] == [3, 5, 0]
    cache.keep([1])
    cache.compact(slack=4)  # row 1's 5 columns of padding are nobody's data any more
    assert cache.length == 4 and cache.starts == [0] and (cache.kv[:, :, 0, :, :4] == 2).all()
    assert (cache.pad_bias[0] == 0).all()
    cache.add_row(2)
    cache.add_row(1)
    with pytest.raises(ValueError, match="in use"):
        cache.add_row(1)
