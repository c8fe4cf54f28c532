"""A render holds a batch, not the diary (issue #15): played audio and used features are let go."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest
from test_render import DIARY, voiced, wav_bytes

from engine.errors import EngineError
from engine.export import StreamedLabel, finish_stored, read_label, verify_label
from engine.exporting import PieceExporter
from engine.facade import Engine
from engine.params import RenderParams
from engine.rendering import synthesis
from engine.rendering.caches import MemoryChunkCache
from engine.rendering.planning import prepare_chunks
from engine.rendering.results import Timings
from engine.rendering.stream import RenderStream
from engine.watermark import Keyring
from ops.bench.watermark import synthetic_speech

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


def test_played_chunks_hold_no_audio_and_finished_batches_no_features(engine, voice, monkeypatch) -> None:
    computed: list[str] = []
    original = synthesis.text_features_many

    def counting(bert, texts, lang):  # noqa: ANN001, ANN202
        computed.extend(texts)
        return original(bert, texts, lang)

    monkeypatch.setattr(synthesis, "text_features_many", counting)
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
    # chunks 1-7 share a feature group: dropped after their batch, never computed again
    assert sorted(computed) == sorted(c.report.text for c in run.chunks)


def test_a_resumed_render_replays_the_cached_chunks_it_let_go(engine, voice) -> None:
    params = RenderParams(seed=3, batch_size=4, max_retries=0)
    budget = lambda phones: 8  # noqa: E731
    cache = MemoryChunkCache()
    first = engine.stream_pieces(TEXT, voice, params, token_budget=budget, chunk_cache=cache)
    played: list[np.ndarray] = []
    for piece in first:  # the first attempt dies after its third chunk
        played.append(piece.audio)
        if piece.last and piece.report.index == 2:
            break
    first.close()
    resumed = list(engine.stream_pieces(TEXT, voice, params, token_budget=budget, chunk_cache=cache))
    assert [p.report.cached for p in resumed if p.last] == [True] * 3 + [False] * 5
    again = np.concatenate([p.audio for p in resumed if p.report.cached])
    assert np.array_equal(again, np.concatenate(played))  # cached whole before it was let go


# --- the stored file's label, digested as the bytes pass -----------------------------------------

def _exported(x: np.ndarray, keyring: Keyring, **kw) -> tuple[list[bytes], PieceExporter]:  # noqa: ANN003
    exporter = PieceExporter(32000, "wav", loudness_lufs=-20.0, keyring=keyring, payload=(77).to_bytes(6, "big"),
                             **kw)  # fmt: skip
    pieces = [exporter.push(x[i:i + 5000]) for i in range(0, len(x), 5000)]
    return [*pieces, exporter.finish()], exporter


@pytest.mark.parametrize("explicit", ["none", "rhythm"])
def test_a_streamed_wav_label_gives_the_stored_file_byte_for_byte(explicit: str) -> None:
    keyring = Keyring.generate()
    x = synthetic_speech(6.0, seed=4) * 0.3
    pieces, exporter = _exported(x, keyring, explicit_label=explicit)
    streamed = b"".join(pieces)
    label = StreamedLabel("wav")
    for piece in pieces:
        label.update(piece)
    head, replace = label.finish(exporter, keyring=keyring, label="job-m1")
    stored = head + streamed[replace:]
    assert stored == finish_stored(exporter, streamed, keyring=keyring, label="job-m1")
    assert verify_label(stored, keyring) and read_label(stored).produce_id == "job-m1"
    assert replace == 44 and len(head) < 2048  # only the header is replaced: the writer holds it
    tampered = bytearray(stored)
    tampered[len(head) + 1000] ^= 1
    assert not verify_label(bytes(tampered), keyring)


def test_other_formats_are_labelled_from_the_whole_file() -> None:
    with pytest.raises(EngineError, match="whole file"):
        StreamedLabel("flac")


def test_render_streaming_stores_what_it_streamed_with_a_label_that_verifies(engine, voice, tmp_path,
                                                                             monkeypatch) -> None:  # fmt: skip
    from shared.settings import Settings
    from shared.storage import make_storage
    from worker import pipeline
    from worker.runner import _commit

    original = Engine.stream_pieces
    monkeypatch.setattr(Engine, "stream_pieces",
                        lambda self, *a, **kw: original(self, *a, **kw | {"token_budget": lambda phones: 8}))
    settings = Settings(data_dir=tmp_path, models_dir=tmp_path / "models", watermark=True)
    storage = make_storage(settings)
    streamed = bytearray()
    with storage.open_writer("r/job.wav") as out:
        def on_piece(data: bytes, progress: float) -> None:
            streamed.extend(data)
            out.write(data)

        stored = pipeline.render_streaming(settings, TEXT, voice, {"seed": 3, "batch_size": 4}, "wav", 99, "job-m2",
                                           on_piece, lambda done, total: None, lambda: False, engine=engine)  # fmt: skip
        assert stored.data is None  # the whole file was never built in memory
        _commit(SimpleNamespace(storage=storage), out, "r/job.wav", "wav", stored)
    result = storage.get("r/job.wav")
    assert len(result) == stored.size and result[len(stored.head):] == bytes(streamed[stored.replace:])
    check = pipeline.read_label(settings, result)
    assert check is not None and check.verified and check.fields["ProduceID"] == "job-m2"
