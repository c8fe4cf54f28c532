"""A render holds a batch, not the diary (issue #15): played audio and used features are let go."""

from __future__ import annotations

import time

import numpy as np
import pytest
from test_render import DIARY, voiced, wav_bytes

from engine.facade import Engine
from engine.params import RenderParams
from engine.rendering import synthesis
from engine.rendering.caches import MemoryChunkCache
from engine.rendering.planning import prepare_chunks
from engine.rendering.results import Timings
from engine.rendering.stream import RenderStream

TEXT = DIARY  # 8 chunks: batches of 1, 2, 4 and 1 at batch size 4


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Engine:
    from engine.model_files import init_random

    root = tmp_path_factory.mktemp("models-tiny")
    init_random(root, size="tiny", version="v2", seed=0)
    return Engine.load(root, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def voice(engine):  # noqa: ANN201 - a VoiceProfile
    return engine.enroll(wav_bytes(voiced(4.0, 140, seed=1)), "今天天气很好，我们去公园散步。", "zh")


def _stream(engine: Engine, voice, params: RenderParams, cache: MemoryChunkCache | None = None) -> RenderStream:  # noqa: ANN001
    reports = engine.plan(TEXT, voice, params)
    return RenderStream(engine.models, voice, params, prepare_chunks(reports, params.seed, cache), Timings(),
                        time.perf_counter(), cache, token_budget=lambda phones: 8)  # fmt: skip


def test_played_chunks_hold_no_audio_and_finished_batches_no_features(engine, voice) -> None:
    params = RenderParams(seed=3, batch_size=4, max_retries=0)
    run = _stream(engine, voice, params)
    assert len(run.chunks) == 8
    held_at_most = 0
    for piece in run.pieces():
        played = run.chunks[: run.next_out]
        assert all(c.audio is None for c in played), "a played chunk still holds its audio"
        assert all(c.features is None for c in run.chunks if c.rendered)
        held_at_most = max(held_at_most, sum(c.audio is not None for c in run.chunks))
        if piece.last:
            assert piece.report.index == run.next_out - 1
    assert run.next_out == 8 and all(c.rendered and c.features is None and c.audio is None for c in run.chunks)
    assert held_at_most <= params.batch_size  # at most a batch waits for its turn


def test_each_chunks_features_are_computed_once_though_they_are_dropped(engine, voice, monkeypatch) -> None:
    computed: list[str] = []
    original = synthesis.text_features_many

    def counting(bert, texts, lang):  # noqa: ANN001, ANN202
        computed.extend(texts)
        return original(bert, texts, lang)

    monkeypatch.setattr(synthesis, "text_features_many", counting)
    run = _stream(engine, voice, RenderParams(seed=3, batch_size=2, max_retries=0))
    list(run.pieces())
    assert sorted(computed) == sorted(c.report.text for c in run.chunks)


def test_a_resumed_render_replays_the_cached_chunks_it_let_go(engine, voice) -> None:
    params = RenderParams(seed=3, batch_size=4, max_retries=0)
    budget = lambda phones: 8  # noqa: E731
    reference = np.concatenate([p.audio for p in engine.stream_pieces(TEXT, voice, params, token_budget=budget)])
    cache = MemoryChunkCache()
    first = engine.stream_pieces(TEXT, voice, params, token_budget=budget, chunk_cache=cache)
    for piece in first:  # the first attempt dies after its third chunk
        if piece.last and piece.report.index == 2:
            break
    first.close()
    resumed = list(engine.stream_pieces(TEXT, voice, params, token_budget=budget, chunk_cache=cache))
    assert [p.report.cached for p in resumed if p.last] == [True] * 3 + [False] * 5
    again = np.concatenate([p.audio for p in resumed])
    assert again.shape == reference.shape
    cached = sum(len(p.audio) for p in resumed if p.report.cached)
    assert np.array_equal(again[:cached], reference[:cached])  # cached whole before it was let go
