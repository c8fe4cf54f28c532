"""The synthesis pipeline on tiny random models: voices, chunking, batching, caching, isolation."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile
import torch

from engine import guards
from engine.errors import BadReference, BadText, Cancelled
from engine.facade import Engine
from engine.params import RenderParams
from engine.profile import VoiceProfile
from engine.rendering.caches import MemoryChunkCache
from engine.rendering.early_start import SAMPLES_PER_TOKEN

DIARY = "今天早上七点起床，天气很好。我去公园跑步，跑了三公里。中午和朋友吃饭，聊了很多事情。晚上看书，然后睡觉。"


def voiced(seconds: float, f0: float, sr: int = 32000, seed: int = 0) -> np.ndarray:
    """A harmonic, wobbling, enveloped signal: something a voice encoder can take a timbre from."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    pitch = f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t) ** 2
    return (0.3 * wave * envelope + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def wav_bytes(samples: np.ndarray, sr: int = 32000, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    soundfile.write(buf, samples, sr, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    from engine.model_files import init_random

    root = tmp_path_factory.mktemp("models-tiny")
    init_random(root, size="tiny", version="v2", seed=0)
    return root


@pytest.fixture(scope="session")
def engine(tiny_models) -> Engine:
    return Engine.load(tiny_models, device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def voice_a(engine) -> VoiceProfile:
    return engine.enroll(wav_bytes(voiced(4.0, 140, seed=1)), "今天天气很好，我们去公园散步。", "zh")


@pytest.fixture(scope="session")
def voice_b(engine) -> VoiceProfile:
    # another pitch, sample rate and container than voice_a
    return engine.enroll(wav_bytes(voiced(5.0, 220, sr=44100, seed=2), 44100, "FLAC"), "我喜欢在晚上写日记。", "zh")


def test_profile_survives_serialisation(voice_a):
    again = VoiceProfile.from_bytes(voice_a.to_bytes())
    assert torch.equal(again.prompt_semantic, voice_a.prompt_semantic)
    assert again.prompt_phone_ids == voice_a.prompt_phone_ids
    assert torch.equal(again.refer_specs[0], voice_a.refer_specs[0])
    assert torch.equal(again.prompt_bert, voice_a.prompt_bert)
    assert again.prompt_text == voice_a.prompt_text and again.model_id == voice_a.model_id


def test_profile_bytes_that_are_not_a_profile_are_refused():
    with pytest.raises(BadReference, match="not a voice profile"):
        VoiceProfile.from_bytes(b"\x00" * 64)


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (wav_bytes(voiced(2.0, 150)), "between 3 and 10 s"),
        (wav_bytes(voiced(11.0, 150)), "between 3 and 10 s"),
        (wav_bytes(np.zeros(32000 * 4, np.float32)), "silent"),
        (b"this is not audio at all" * 100, "could not read"),
    ],
)
def test_bad_reference_is_refused_with_a_clear_message(engine, audio, message):
    with pytest.raises(BadReference, match=message):
        engine.enroll(audio, "今天天气很好。", "zh")


def test_empty_transcript_is_refused(engine):
    with pytest.raises(BadReference, match="transcript is empty"):
        engine.enroll(wav_bytes(voiced(4.0, 140)), "  ", "zh")


def test_output_length_and_rate_follow_the_tokens(engine, voice_a):
    params = RenderParams(seed=7, fragment_interval=0.3, max_retries=0)
    result = engine.render(DIARY, voice_a, params)
    assert result.sample_rate == 32000
    assert result.audio.dtype == np.float32
    gap = int(0.3 * 32000)
    assert len(result.audio) == sum(c.tokens * SAMPLES_PER_TOKEN + gap for c in result.chunks)
    assert [c.index for c in result.chunks] == list(range(len(result.chunks)))
    assert len(result.chunks) > 1
    assert np.abs(result.audio).max() <= 1.0


def test_same_seed_gives_the_same_audio_and_another_seed_does_not(engine, voice_a):
    params = RenderParams(seed=11, top_k=15, noise_scale=0.5, max_retries=0)
    first = engine.render(DIARY, voice_a, params)
    second = engine.render(DIARY, voice_a, params)
    other = engine.render(DIARY, voice_a, params.model_copy(update={"seed": 12}))
    assert np.array_equal(first.audio, second.audio)
    assert not np.array_equal(first.audio, other.audio)


def test_greedy_batched_rendering_equals_one_by_one_and_keeps_order(engine, voice_a):
    # Batching must not change what greedy decoding says (padding, masks, rows leaving): checked on
    # the exact kernels, as the fast ones move a batch's numbers by design (engine.kernels).
    greedy = RenderParams(top_k=1, noise_scale=0.0, seed=3)
    served = engine.models.matmul_mode
    engine.models.use_matmul("exact")
    try:
        alone = engine.render(DIARY, voice_a, greedy.model_copy(update={"batch_size": 1}))
        batched = engine.render(DIARY, voice_a, greedy.model_copy(update={"batch_size": 4}))
    finally:
        engine.models.use_matmul(served)
    assert [c.text for c in batched.chunks] == [c.text for c in alone.chunks]
    assert [c.semantic for c in batched.chunks] == [c.semantic for c in alone.chunks]
    assert np.array_equal(batched.audio, alone.audio)


def test_edited_diary_resynthesises_only_changed_chunks(engine, voice_a):
    cache = MemoryChunkCache()
    params = RenderParams(seed=5, max_retries=0)
    first = engine.render(DIARY, voice_a, params, chunk_cache=cache)
    assert first.synthesised == len(first.chunks)
    edited = DIARY.replace("跑了三公里", "跑了五公里")
    second = engine.render(edited, voice_a, params, chunk_cache=cache)
    assert second.synthesised == 1
    changed = [c for c in second.chunks if not c.cached]
    assert "五公里" in changed[0].text
    # unchanged chunks reuse the exact audio rendered the first time
    by_text = {c.text: c for c in first.chunks}
    assert all(by_text[c.text].id == c.id for c in second.chunks if c.cached)


def test_interleaved_voices_do_not_affect_each_other(engine, voice_a, voice_b):
    params = RenderParams(seed=9, top_k=15, max_retries=0)
    alone_a = engine.render(DIARY, voice_a, params).audio
    alone_b = engine.render(DIARY[:30], voice_b, params).audio
    streams = {"a": engine.stream(DIARY, voice_a, params), "b": engine.stream(DIARY[:30], voice_b, params)}
    parts: dict[str, list[np.ndarray]] = {"a": [], "b": []}
    while streams:  # alternate one chunk at a time until both are done
        for name in list(streams):
            chunk = next(streams[name], None)
            if chunk is None:
                del streams[name]
            else:
                parts[name].append(chunk.audio)
    parts_a, parts_b = parts["a"], parts["b"]
    assert np.array_equal(np.concatenate(parts_a), alone_a)
    assert np.array_equal(np.concatenate(parts_b), alone_b)


def test_stream_yields_chunks_in_order_with_progress(engine, voice_a):
    seen = []
    result = engine.render(DIARY, voice_a, RenderParams(seed=1, batch_size=2, max_retries=0),
                           on_progress=lambda done, total: seen.append((done, total)))
    total = len(result.chunks)
    assert seen == [(i, total) for i in range(1, total + 1)]
    assert result.timings.first_audio_s is not None and result.timings.first_audio_s <= result.timings.total_s


def test_the_first_chunk_streams_window_by_window_and_joins_to_the_same_audio(engine, voice_a):
    params = RenderParams(seed=4, batch_size=3, max_retries=0)
    whole = engine.render(DIARY, voice_a, params)
    pieces = list(engine.stream_pieces(DIARY, voice_a, params, first_window_frames=4))
    first = [p for p in pieces if p.report.index == 0]
    # 4 frames of 640 samples first, then the rest of the chunk, then its fragment silence
    assert len(first) >= 3 and len(first[0].audio) == 4 * 640 and first[-1].last
    assert [p.report.index for p in pieces if p.last] == list(range(len(whole.chunks)))
    assert all(len(p.audio) > 0 for p in pieces if p.report.index > 0)
    # the same audio as the whole render, up to the float rounding of the generator's windows
    joined = np.concatenate([p.audio for p in pieces])
    assert joined.shape == whole.audio.shape
    np.testing.assert_allclose(joined, whole.audio, atol=1e-5)
    later = np.concatenate([p.audio for p in pieces if p.report.index > 0])
    assert np.array_equal(later, whole.audio[len(joined) - len(later):])  # later chunks: bit-identical


def test_bert_runs_in_groups_whatever_the_batch_size(engine, voice_a, monkeypatch):
    from engine.rendering import planning

    monkeypatch.setattr(planning, "FEATURE_GROUP", 3)
    bert = engine.models.bert
    calls: list[int] = []
    original = bert.phone_features_many

    def counted(segments):  # noqa: ANN001, ANN202
        calls.append(len(segments))
        return original(segments)

    monkeypatch.setattr(bert, "phone_features_many", counted)
    result = engine.render(DIARY, voice_a, RenderParams(seed=2, batch_size=1, max_retries=0))
    n = len(result.chunks)
    # the first chunk alone (early audio), then groups of FEATURE_GROUP, though T2S went one by one
    assert n > 4 and calls == [1] + [3] * ((n - 1) // 3) + ([(n - 1) % 3] if (n - 1) % 3 else [])


def test_early_start_plays_the_first_chunk_before_its_tokens_are_decoded(engine, voice_a):
    from engine.rendering.early_start import EARLY_CROSSFADE
    from engine.rendering.results import Timings

    params = RenderParams(seed=5, batch_size=4, max_retries=0)
    budget = lambda n_phones: 60  # noqa: E731 - every chunk exactly 60 tokens (2.4 s), so there is time to win
    exact = list(engine.stream_pieces(DIARY, voice_a, params, token_budget=budget))
    timings = Timings()
    stream = engine.stream_pieces(DIARY, voice_a, params, token_budget=budget, early_start=True, timings=timings)
    pieces, early = [], []
    for piece in stream:
        pieces.append(piece)
        if timings.t2s_tokens == 0:  # counted when a decode call returns: these came before it did
            early.append(piece)
    assert early and all(p.report.index == 0 and not p.last for p in early)
    played = sum(len(p.audio) for p in early)
    assert 0 < played < 60 * SAMPLES_PER_TOKEN and played % 640 == 0

    def chunk_audio(ps, index):  # noqa: ANN001, ANN202
        return np.concatenate([p.audio for p in ps if p.report.index == index])

    assert [p.report.index for p in pieces if p.last] == [p.report.index for p in exact if p.last]
    ours, reference = chunk_audio(pieces, 0), chunk_audio(exact, 0)
    assert ours.shape == reference.shape
    handover = played + EARLY_CROSSFADE
    assert not np.allclose(ours[:played], reference[:played], atol=1e-3)  # the approximation
    np.testing.assert_allclose(ours[handover:], reference[handover:], atol=1e-5)  # then the exact audio
    for index in range(1, len(exact)):
        if any(p.report.index == index for p in exact):
            assert np.array_equal(chunk_audio(pieces, index), chunk_audio(exact, index))


def test_an_early_start_replayed_at_its_step_gives_the_same_audio(engine, voice_a):
    params = RenderParams(seed=9, batch_size=4, max_retries=0)
    budget = lambda n_phones: 60  # noqa: E731 - long enough for the clock to start early
    first, steps = [], set()
    for piece in engine.stream_pieces(DIARY, voice_a, params, token_budget=budget, early_start=True):
        first.append(piece)
        if piece.report.index == 0:
            steps.add(piece.report.early_tokens)  # as each piece comes out: known from the first one on
    assert len(steps) == 1 and isinstance(k := steps.pop(), int) and 10 < k < 60
    assert all(p.report.early_tokens is None for p in first if p.report.index > 0)
    again = list(engine.stream_pieces(DIARY, voice_a, params, token_budget=budget, early_start_at=k))
    assert np.array_equal(np.concatenate([p.audio for p in again]), np.concatenate([p.audio for p in first]))
    other = list(engine.stream_pieces(DIARY, voice_a, params, token_budget=budget, early_start_at=k + 3))
    assert other[0].report.early_tokens == k + 3
    assert not np.array_equal(np.concatenate([p.audio for p in other]), np.concatenate([p.audio for p in first]))


def test_an_early_started_first_chunk_is_cached_apart_from_the_exact_one(engine, voice_a):
    params = RenderParams(seed=9, batch_size=4, max_retries=0)
    budget = lambda n_phones: 60  # noqa: E731
    cache = MemoryChunkCache()
    first = list(engine.stream_pieces(DIARY, voice_a, params, token_budget=budget, early_start=True,
                                      chunk_cache=cache))  # fmt: skip
    assert first[0].report.early_tokens is not None
    again = list(engine.stream_pieces(DIARY, voice_a, params, token_budget=budget, early_start=True,
                                      chunk_cache=cache))  # fmt: skip
    assert all(p.report.cached for p in again)  # a re-read reuses every chunk, the early one too
    assert np.array_equal(np.concatenate([p.audio for p in again]), np.concatenate([p.audio for p in first]))
    exact = list(engine.stream_pieces(DIARY, voice_a, params, token_budget=budget, chunk_cache=cache))
    assert [p.report.cached for p in exact if p.last] == [False] + [True] * (len([p for p in exact if p.last]) - 1)
    assert exact[0].report.early_tokens is None


def test_cancel_stops_between_chunks(engine, voice_a):
    calls = {"n": 0}

    def should_cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 1

    with pytest.raises(Cancelled):
        engine.render(DIARY, voice_a, RenderParams(seed=1, batch_size=1), should_cancel=should_cancel)


def test_runaway_chunks_are_retried_and_reported(tiny_models, voice_a):
    # A GPT that can never say EOS (as a broken fine-tune might): every attempt runs into the cap.
    stuck = Engine.load(tiny_models, device="cpu", precision="fp32")
    eos = stuck.models.t2s.config.eos

    calls = []

    def never_eos(module, inputs, logits):
        calls.append(1)
        logits[..., eos] = -1e9
        return logits

    stuck.models.t2s.ar_predict_layer.register_forward_hook(never_eos)
    result = stuck.render("今天天气很好。", voice_a, RenderParams(seed=1, max_retries=2))
    chunk = result.chunks[0]
    assert len(calls) >= 3 * chunk.tokens  # the hook saw every step of the three attempts
    assert chunk.retries == 2
    assert chunk.problems == ["runaway", "runaway", "runaway (kept the best attempt)"]
    assert chunk.tokens == guards.token_cap(chunk.phones, 50 * stuck.models.max_sec)
    assert result.retried == [chunk]


def test_text_with_nothing_to_say_is_refused(engine, voice_a):
    with pytest.raises(BadText):
        engine.render("……！！", voice_a)


def test_guard_verdicts():
    speech = torch.tensor([5, 9, 14, 2, 77, 31, 8, 5, 60, 12] * 3)
    assert guards.judge(speech, n_phones=12, hit_cap=False).ok
    assert guards.judge(speech, n_phones=12, hit_cap=True).problem == "runaway"
    assert guards.judge(speech[:5], n_phones=40, hit_cap=False).problem == "empty"
    assert guards.judge(torch.full((40,), 486), n_phones=12, hit_cap=False).problem == "repeated"
    assert guards.judge(torch.tensor([1, 2, 3] * 10), n_phones=12, hit_cap=False).problem == "repeated"
    assert guards.token_cap(10, early_stop_num=2700) == 65
    assert guards.token_cap(1000, early_stop_num=2700) == 2700


def test_a_tiny_v2pro_folder_enrolls_and_renders_with_a_speaker_vector(tmp_path):
    from engine.model_files import init_random

    init_random(tmp_path, size="tiny", version="v2Pro", seed=0)
    pro = Engine.load(tmp_path, device="cpu", precision="fp32")
    assert pro.models.version == "v2Pro"
    voice = pro.enroll(wav_bytes(voiced(4.0, 140, seed=1)), "今天天气很好，我们去公园散步。", "zh")
    assert voice.sv_embs is not None and voice.sv_embs[0].shape == (1, 20480)
    result = pro.render("今天早上七点起床。", voice, RenderParams(seed=1, max_retries=0))
    assert result.duration_s > 0 and np.isfinite(result.audio).all()


def test_a_render_paused_mid_decode_for_another_render_goes_on_exactly_where_it_was(engine, voice_a):
    """The pause point (issue #14): called after every decoding step, and another render on the same
    models run inside it changes neither render's audio."""
    question = "你好，今天怎么样？"
    params = RenderParams(seed=4, batch_size=4, top_k=5)

    def audio_of(text: str, **kwargs) -> np.ndarray:
        return np.concatenate([p.audio for p in engine.stream_pieces(text, voice_a, params, **kwargs)])

    diary_alone, question_alone = audio_of(DIARY), audio_of(question)
    calls: list[int] = []
    inside: list[np.ndarray] = []

    def pause() -> None:
        calls.append(len(calls))
        if len(calls) == 40:  # during the first chunk's decode: one call before its batch, then one per step
            inside.append(audio_of(question))

    paused_pieces = list(engine.stream_pieces(DIARY, voice_a, params, pause_point=pause))
    paused = np.concatenate([p.audio for p in paused_pieces])
    tokens = sum({p.report.index: p.report.tokens for p in paused_pieces}.values())
    assert len(calls) >= tokens  # once per decoding step at least
    assert paused_pieces[0].report.tokens > 40  # so the other render ran in the middle of a decode
    assert np.array_equal(paused, diary_alone)
    assert len(inside) == 1 and np.array_equal(inside[0], question_alone)


def test_the_pool_keeps_every_row_busy_until_the_chunks_run_out(engine, voice_a, monkeypatch):
    """After the first chunk, the rest decode in one pool: when a row stops, the next chunk enters, so
    once the ramp (2 rows until two chunks are done) is over, batch_size rows run while there are
    that many chunks left."""
    from engine.rendering import semantic

    text = ("我起床了。今天早上天气很好阳光明媚。我去公园走走。公园里有很多人在跑步和散步还有人在打太极拳。中午吃饭了。"
            "下午我在家里看了一本很有意思的书。晚上很安静。我和朋友打电话聊了很久很久。然后洗澡。最后我写完日记就去睡觉了。")
    original = semantic.decode_steps
    steps: list[tuple[int, int]] = []  # per pool step: (rows that sampled, pool chunks done before it)

    def counted(*args, **kwargs):
        states = original(*args, **kwargs)
        if kwargs.get("width") is None:  # the first chunk's decode (or a retry): not the pool
            yield from states
            return
        done = 0
        for state in states:
            steps.append((len(state.items) + len(state.stopped), done))
            done += len(state.stopped)
            yield state

    monkeypatch.setattr(semantic, "decode_steps", counted)
    params = RenderParams(seed=2, batch_size=4, max_retries=0)
    pieces = engine.stream_pieces(text, voice_a, params, token_budget=lambda phones: 12 + 3 * phones)
    chunks = [p.report for p in pieces if p.last]
    pool = len(chunks) - 1
    assert pool == 9 and len({c.tokens for c in chunks}) >= 6  # very different lengths
    assert [c.index for c in chunks] == list(range(10))
    assert sum(rows for rows, _ in steps) == sum(c.tokens + 1 for c in chunks[1:])  # each chunk's steps
    assert [rows for rows, _ in steps] == [min(2 if done < 2 else 4, pool - done) for _, done in steps]
    assert steps[0][0] == 2 and any(rows == 4 for rows, _ in steps)  # the ramp, then full rows
