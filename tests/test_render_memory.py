"""A render holds a batch, not the diary (issue #15): played audio and used features are let go."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from test_render import DIARY, voiced, wav_bytes

from engine.errors import EngineError
from engine.export import StreamedLabel, finish_stored, read_label, stored_bytes, verify_label
from engine.exporting import PieceExporter
from engine.facade import Engine
from engine.params import RenderParams
from engine.rendering import synthesis
from engine.rendering.caches import MemoryChunkCache
from engine.rendering.planning import prepare_chunks
from engine.rendering.results import Timings
from engine.rendering.stream import RenderStream
from engine.watermark import AigcLabel, Keyring, metadata
from ops.bench.watermark import synthetic_speech

TEXT = DIARY  # 8 chunks: the first alone, then a pool of 7 (2, then 4 rows at batch size 4)


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


class CountingCache(MemoryChunkCache):
    """The in-process chunk cache, counting the chunks it hands out (a real cache, not a stand-in)."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    def get(self, key: str) -> np.ndarray | None:
        found = super().get(key)
        self.loads += found is not None
        return found

    def forget(self, key: str) -> None:
        del self._items[key]


def test_a_resumed_render_loads_each_cached_chunk_only_when_its_turn_to_play_comes(engine, voice) -> None:
    params = RenderParams(seed=3, batch_size=4, max_retries=0)
    cache = CountingCache()
    first = list(engine.stream_pieces(TEXT, voice, params, token_budget=lambda phones: 8, chunk_cache=cache))
    cache.loads = 0
    run = _stream(engine, voice, params, cache)
    assert cache.loads == 0 and all(c.cached and c.audio is None for c in run.chunks)  # nothing loaded yet
    again = []
    for piece in run.pieces():
        assert cache.loads == run.next_out  # each loaded as it is played, none ahead of its turn
        assert all(c.audio is None for c in run.chunks)  # and let go as it is played
        again.append(piece.audio)
    assert cache.loads == 8 and all(c.report.cached for c in run.chunks)
    assert np.array_equal(np.concatenate(again), np.concatenate([p.audio for p in first]))


def test_a_chunk_that_left_the_cache_after_planning_is_rendered_when_its_turn_comes(engine, voice) -> None:
    params = RenderParams(seed=3, batch_size=4, max_retries=0)
    cache = CountingCache()
    for _ in engine.stream_pieces(TEXT, voice, params, token_budget=lambda phones: 8, chunk_cache=cache):
        pass
    run = _stream(engine, voice, params, cache)
    cache.forget(run.chunks[2].report.id)  # gone between planning and playing (an LRU, a cleared folder)
    done = [p.report for p in run.pieces() if p.last]
    assert [r.index for r in done] == list(range(8))
    assert [r.cached for r in done] == [True, True, False, True, True, True, True, True]
    assert cache.contains(run.chunks[2].report.id)  # rendered again, and cached again


# --- the stored file's label, digested as the bytes pass -----------------------------------------

def _exported(x: np.ndarray, keyring: Keyring | None, fmt: str = "wav", **kw) -> tuple[list[bytes], PieceExporter]:  # noqa: ANN003
    payload = (77).to_bytes(6, "big") if keyring is not None else None
    exporter = PieceExporter(32000, fmt, loudness_lufs=-20.0, keyring=keyring, payload=payload, **kw)
    pieces = [exporter.push(x[i:i + 5000]) for i in range(0, len(x), 5000)]
    return [*pieces, exporter.finish()], exporter


def _streamed_label(pieces: list[bytes], exporter: PieceExporter, keyring: Keyring,
                    job: str | AigcLabel) -> tuple[bytes, int, StreamedLabel]:  # fmt: skip
    label = StreamedLabel(exporter.fmt)
    for piece in pieces:
        label.update(piece)
    head, replace = label.finish(exporter, keyring=keyring, label=job)
    return head, replace, label


@pytest.mark.parametrize("explicit", ["none", "rhythm"])
def test_a_streamed_wav_label_gives_the_stored_file_byte_for_byte(explicit: str) -> None:
    keyring = Keyring.generate()
    x = synthetic_speech(6.0, seed=4) * 0.3
    pieces, exporter = _exported(x, keyring, explicit_label=explicit)
    streamed = b"".join(pieces)
    head, replace, _ = _streamed_label(pieces, exporter, keyring, "job-m1")
    stored = head + streamed[replace:]
    assert stored == finish_stored(exporter, streamed, keyring=keyring, label="job-m1")
    assert verify_label(stored, keyring) and read_label(stored).produce_id == "job-m1"
    assert replace == 44 and len(head) < 2048  # only the header is replaced: the writer holds it
    tampered = bytearray(stored)
    tampered[len(head) + 1000] ^= 1
    assert not verify_label(bytes(tampered), keyring)


@pytest.mark.parametrize("fmt", ["flac", "ogg", "mp3"])
def test_a_streamed_label_gives_the_whole_file_path_s_stored_file_byte_for_byte(fmt: str) -> None:
    keyring = Keyring.generate()
    x = synthetic_speech(8.0, seed=6) * 0.3
    pieces, exporter = _exported(x, keyring, fmt, explicit_label="rhythm")
    streamed = b"".join(pieces)
    head, replace, label = _streamed_label(pieces, exporter, keyring, "job-f1")
    stored = head + streamed[replace:]
    whole = finish_stored(exporter, streamed, keyring=keyring, label="job-f1")
    assert stored == whole  # the label, its padding and the headers rewritten at close: all the same
    # ... which is what mutagen writes into the whole file, as before (the label is the one signed)
    assert whole == metadata.write_label(stored_bytes(exporter, streamed), read_label(whole))
    assert verify_label(stored, keyring) and read_label(stored).produce_id == "job-f1"
    assert label.streamed_bytes == len(streamed) and len(stored) == len(head) + len(streamed) - replace
    assert replace <= 4096 and len(head) <= 8192  # only the metadata (and MP3's first frame) is replaced
    # the audio is what the stream carried
    np.testing.assert_array_equal(sf.read(io.BytesIO(stored))[0], sf.read(io.BytesIO(stored_bytes(exporter, streamed)))[0])
    audio_at = metadata.metadata_end(stored, fmt)
    audio_at += 27 + stored[audio_at + 26] if fmt == "ogg" else 0  # Ogg: the packets, not the page headers
    for at in (audio_at + 10, len(stored) // 2, len(stored) - 10):  # the digest covers the audio up to its end
        tampered = bytearray(stored)
        tampered[at] ^= 0x10
        assert not verify_label(bytes(tampered), keyring), at


def test_an_ogg_label_past_the_comment_header_s_room_still_patches_only_its_page_or_is_refused() -> None:
    keyring = Keyring.generate()
    pieces, exporter = _exported(synthetic_speech(4.0, seed=8) * 0.3, keyring, "ogg")
    streamed = b"".join(pieces)
    longer = AigcLabel(produce_id="j" * 1500)  # more than libsndfile's padding: mutagen pads it afresh
    head, replace, _ = _streamed_label(pieces, exporter, keyring, longer)
    assert len(head) > replace  # the page grew, the pages after it kept their numbers
    assert head + streamed[replace:] == finish_stored(exporter, streamed, keyring=keyring, label=longer)
    with pytest.raises(EngineError, match="more pages"):  # mutagen would renumber every later page
        _streamed_label(pieces, exporter, keyring, AigcLabel(produce_id="j" * 9000))


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3"])
def test_the_labeller_holds_the_stream_s_first_64_kib_and_a_page_whatever_the_length(fmt: str) -> None:
    from engine.watermark.streamdigest import HEAD_BYTES

    x = np.concatenate([synthetic_speech(8.0, seed=2) * 0.3] * 8)  # 64 s, many times what it may hold
    pieces, exporter = _exported(x, None, fmt)
    _, _, label = _streamed_label(pieces, exporter, Keyring.generate(), "job-b1")
    assert label.streamed_bytes > 6 * HEAD_BYTES
    assert HEAD_BYTES <= label.peak_held <= HEAD_BYTES + 8192, label.peak_held  # an Ogg page, MP3's tail


def test_an_mp3_labelled_with_the_version_1_digest_still_verifies() -> None:
    keyring = Keyring.generate()
    pieces, exporter = _exported(synthetic_speech(4.0, seed=3) * 0.3, keyring, "mp3")
    data = stored_bytes(exporter, b"".join(pieces))
    earlier = metadata.write_label(data, AigcLabel(produce_id="job-v1").signed(keyring.primary,
                                                                              metadata.content_digest(data, version=1)))
    assert verify_label(earlier, keyring)
    assert metadata.content_digest(data, version=1) != metadata.content_digest(data)
    first_frame = bytearray(earlier)  # version 2 still covers the first frame, digested last
    first_frame[metadata.metadata_end(earlier, "mp3") + 100] ^= 1
    assert not verify_label(bytes(first_frame), keyring)


def test_unknown_formats_have_no_streamed_label() -> None:
    with pytest.raises(EngineError, match="no streamed label"):
        StreamedLabel("aiff")


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3"])
def test_render_streaming_stores_what_it_streamed_with_a_label_that_verifies(engine, voice, tmp_path, monkeypatch,
                                                                             fmt) -> None:  # fmt: skip
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
    with storage.open_writer(f"r/job.{fmt}") as out:
        def on_piece(data: bytes, progress: float) -> None:
            streamed.extend(data)
            out.write(data)

        stored = pipeline.render_streaming(settings, TEXT, voice, {"seed": 3, "batch_size": 4}, fmt, 99, "job-m2",
                                           on_piece, lambda done, total: None, lambda: False, engine=engine)  # fmt: skip
        assert stored.file is None  # the whole file was never built
        _commit(SimpleNamespace(storage=storage), out, f"r/job.{fmt}", fmt, stored)
    result = storage.get(f"r/job.{fmt}")
    assert len(result) == stored.size and result[len(stored.head):] == bytes(streamed[stored.replace:])
    check = pipeline.read_label(settings, result)
    assert check is not None and check.verified and check.fields["ProduceID"] == "job-m2"


def test_an_early_opening_is_told_before_its_first_byte_and_replays_to_the_same_bytes(engine, voice, tmp_path,
                                                                                      monkeypatch) -> None:  # fmt: skip
    from shared.settings import Settings
    from worker import pipeline

    original = Engine.stream_pieces
    monkeypatch.setattr(Engine, "stream_pieces",  # long chunks: the clock has time to start early
                        lambda self, *a, **kw: original(self, *a, **kw | {"token_budget": lambda phones: 60}))
    settings = Settings(data_dir=tmp_path, models_dir=tmp_path / "models", watermark=True)
    events: list[str] = []

    def streamed(opening: pipeline.Opening) -> bytes:
        data = bytearray()

        def on_piece(piece: bytes, progress: float) -> None:
            events.append("bytes")
            data.extend(piece)

        pipeline.render_streaming(settings, TEXT, voice, {"seed": 3, "batch_size": 4}, "wav", 99, "job-e1",
                                  on_piece, lambda done, total: None, lambda: False, engine=engine, opening=opening)  # fmt: skip
        return bytes(data)

    told: list[int] = []
    first = streamed(pipeline.Opening(early_start=True,
                                      on_early_start=lambda k: (told.append(k), events.append("told"))))  # fmt: skip
    assert len(told) == 1 and events[0] == "told"
    events.clear()
    again = streamed(pipeline.Opening(early_start=True, replay_at=told[0],
                                      on_early_start=lambda k: events.append("told")))  # fmt: skip
    assert again == first and "told" not in events  # a replay is on record already
    assert streamed(pipeline.Opening()) != first  # exact, on a 1 s lead


@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_render_streaming_signs_c2pa_from_a_spooled_file_not_from_memory(engine, voice, tmp_path, monkeypatch,
                                                                         fmt) -> None:  # fmt: skip
    from engine.watermark import c2pa
    from shared.settings import Settings
    from shared.storage import make_storage
    from worker import pipeline
    from worker.runner import _commit

    original = Engine.stream_pieces
    monkeypatch.setattr(Engine, "stream_pieces",
                        lambda self, *a, **kw: original(self, *a, **kw | {"token_budget": lambda phones: 8}))
    settings = Settings(data_dir=tmp_path, models_dir=tmp_path / "models", watermark=True, c2pa=True)
    storage = make_storage(settings)
    with storage.open_writer(f"r/job.{fmt}") as out:
        stored = pipeline.render_streaming(settings, TEXT, voice, {"seed": 3, "batch_size": 4}, fmt, 99, "job-c1",
                                           lambda data, progress: out.write(data),
                                           lambda done, total: None, lambda: False, engine=engine)  # fmt: skip
        assert stored.file is not None and not isinstance(stored.file, io.BytesIO)  # a temporary file on disk
        _commit(SimpleNamespace(storage=storage), out, f"r/job.{fmt}", fmt, stored)
    assert stored.file.closed
    result = storage.get(f"r/job.{fmt}")
    manifest = c2pa.read(result)
    assert len(result) == stored.size and manifest["validation_state"] == "Valid"
    check = pipeline.read_label(settings, result)
    assert check is not None and check.verified and manifest["aigc"] == check.fields
    assert pipeline.detect(settings, result).mark == 99
