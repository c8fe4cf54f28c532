"""Rendering: diary text + voice profile -> 32 kHz audio, chunk by chunk, in order.

    text -> chunks (split_text) -> phones + BERT (batched) -> T2S (length-batched, KV cache, capped)
         -> guards (runaway / empty / repeated: retry with another seed) -> SoVITS decode per chunk
         -> fragment silence -> audio

:meth:`Engine.stream` yields each finished chunk as soon as every chunk before it is done, so the
first sentence plays while the rest renders; :meth:`Engine.render` assembles the whole file.
Every chunk has a stable id (its text, the voice, the weights and the parameters that change its
sound); with a :class:`ChunkCache`, re-rendering an edited diary synthesises only changed chunks.
Randomness comes only from per-call generators seeded from the request: same seed, same audio.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from engine import audio, guards
from engine.decoding import DecodeState, DecodingOptions, LogitsHook, T2SRequest, T2SResult, decode_steps
from engine.enroll import enroll
from engine.errors import BadText, Cancelled
from engine.model_files import g2pw_folders
from engine.params import RenderParams
from engine.profile import VoiceProfile
from engine.runtime import Models, set_threads
from engine.text import reader_id, split_text, use_g2pw
from engine.text_features import TextFeatures, text_features_many

SAMPLE_RATE = audio.SAMPLE_RATE
FEATURE_GROUP = 16  # chunks whose phones and BERT features are computed in one call
FIRST_WINDOW_FRAMES = 25  # the first 0.5 s of a stream is vocoded alone, so it plays sooner
SAMPLES_PER_TOKEN = 2 * audio.HOP  # one 25 Hz semantic token = two 50 Hz frames = 1280 samples
# Early start (stream_pieces(early_start=True)): see _EarlyStart.
EARLY_HOLDBACK_TOKENS = 8  # the partial decode's last tokens lack right context (~6.5 for the vocoder)
EARLY_CROSSFADE = audio.HOP  # samples (20 ms) over which the early audio hands over to the exact rest
EARLY_VOCODER_MARGIN_S = 0.25  # time allowed for vocoding the rest's first window
EXPECTED_TOKENS_PER_PHONE = 2.5  # a guess of the chunk's length while it is being decoded


@dataclass
class ChunkReport:
    index: int
    id: str
    text: str
    phones: int = 0
    tokens: int = 0
    cached: bool = False
    retries: int = 0
    problems: list[str] = field(default_factory=list)  # what each flawed attempt looked like
    samples: int = 0
    semantic: list[int] = field(default_factory=list)  # the kept semantic tokens (empty when cached)


@dataclass
class RenderedChunk:
    report: ChunkReport
    audio: np.ndarray  # float32 at 32 kHz, including the fragment silence after it
    total: int  # chunks in the whole render


@dataclass
class AudioPiece:
    """A stretch of one chunk's audio, in text order: the first chunk comes window by window (so playback
    starts before it is fully vocoded), a later one whole; ``last`` marks a chunk's final piece."""

    report: ChunkReport
    audio: np.ndarray  # float32 at 32 kHz; a chunk's last piece includes its fragment silence
    last: bool
    total: int  # chunks in the whole render


@dataclass
class Timings:
    frontend_s: float = 0.0
    bert_s: float = 0.0
    t2s_s: float = 0.0
    sovits_s: float = 0.0
    first_audio_s: float | None = None
    total_s: float = 0.0
    t2s_tokens: int = 0


@dataclass
class RenderResult:
    audio: np.ndarray  # float32 mono at sample_rate
    sample_rate: int
    chunks: list[ChunkReport]
    timings: Timings
    seed: int

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate

    @property
    def synthesised(self) -> int:
        return sum(not c.cached for c in self.chunks)

    @property
    def retried(self) -> list[ChunkReport]:
        return [c for c in self.chunks if c.retries]


class ChunkCache(Protocol):
    def get(self, key: str) -> np.ndarray | None: ...
    def put(self, key: str, audio: np.ndarray) -> None: ...


class MemoryChunkCache:
    """A bounded in-process LRU of chunk audio."""

    def __init__(self, max_chunks: int = 4096) -> None:
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self.max_chunks = max_chunks

    def get(self, key: str) -> np.ndarray | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: str, audio: np.ndarray) -> None:
        self._items[key] = audio
        self._items.move_to_end(key)
        while len(self._items) > self.max_chunks:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class FolderChunkCache:
    """Chunk audio as ``.npy`` files in a folder (embedded mode keeps it under the data folder)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        return np.load(path, allow_pickle=False) if path.exists() else None

    def put(self, key: str, audio: np.ndarray) -> None:
        tmp = self._path(key).with_suffix(".tmp.npy")
        np.save(tmp, audio.astype(np.float32), allow_pickle=False)
        tmp.replace(self._path(key))


@dataclass
class _Chunk:
    report: ChunkReport
    features: TextFeatures | None = None
    seed: int = 0
    audio: np.ndarray | None = None


@dataclass
class _EarlyStart:
    """Plays the first chunk before its semantic tokens are all decoded.

    After each decoding step: once the tokens so far, less a holdback, would play for longer than the
    rest is expected to take (steps timed as they run, the chunk's length guessed from its phones,
    plus a margin for the vocoder), they are vocoded on their own and played. The exact audio of the
    whole chunk takes over at that point with a short crossfade. The early part is an approximation
    (SoVITS saw only part of the chunk), which is why it is opt-in.
    """

    expected_tokens: int
    speed: float
    play: Callable[[torch.Tensor], Iterator[np.ndarray]]  # partial tokens -> their audio, window by window
    played: np.ndarray | None = None  # what was played from the partial decode
    tail: np.ndarray | None = None  # the partial audio just after it, to crossfade from
    prefix: torch.Tensor | None = None  # the tokens it came from
    _clock: tuple[float, int] | None = None  # (time, step) of the first state seen

    def due(self, state: DecodeState) -> bool:
        now, k = time.perf_counter(), state.step
        if self._clock is None:
            self._clock = (now, k)
            return False
        if self.prefix is not None or state.results[0] is not None or k <= EARLY_HOLDBACK_TOKENS + 2:
            return False
        per_step = (now - self._clock[0]) / max(1, k - self._clock[1])
        rest_s = max(0, self.expected_tokens - k) * per_step + EARLY_VOCODER_MARGIN_S
        return (k - EARLY_HOLDBACK_TOKENS) * SAMPLES_PER_TOKEN / SAMPLE_RATE / self.speed >= rest_s

    def start(self, tokens: torch.Tensor) -> Iterator[np.ndarray]:
        """Vocode ``tokens`` alone and yield the part to play now, window by window; keep the tail."""
        boundary = int((len(tokens) - EARLY_HOLDBACK_TOKENS) * SAMPLES_PER_TOKEN / self.speed) // audio.HOP * audio.HOP
        self.prefix, played, done = tokens, [], 0
        for part in self.play(tokens):
            now = part[: max(0, boundary - done)]
            if len(now):
                played.append(now)
                yield now
            if done + len(part) > boundary:
                self.tail = part[max(0, boundary - done) : boundary - done + EARLY_CROSSFADE]
                break
            done += len(part)
        self.played = np.concatenate(played) if played else np.zeros(0, np.float32)

    def hand_over(self, part: np.ndarray) -> np.ndarray:
        """The exact rest's first samples, crossfaded from the early audio's tail."""
        if self.tail is None or not len(part):
            return part
        n = min(len(self.tail), len(part))
        fade = np.linspace(0.0, 1.0, n, dtype=np.float32)
        part = part.copy()
        part[:n] = self.tail[:n] * (1.0 - fade) + part[:n] * fade
        self.tail = None
        return part


def _stable_hash(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class Engine:
    """GPT-SoVITS loaded once; enroll voices and render text with them. Holds no per-request state."""

    def __init__(self, models: Models) -> None:
        self.models = models

    @classmethod
    def load(cls, models_dir: Path, device: str = "auto", precision: str = "auto", version: str | None = None,
             threads: int | None = None, g2pw_dir: Path | None = None,
             g2pw_tokenizer_dir: Path | None = None) -> Engine:  # fmt: skip
        """``g2pw_dir``/``g2pw_tokenizer_dir``: Chinese polyphone model and its tokenizer (default
        ``<models>/G2PWModel`` and the models folder's BERT); no such folder reads with pypinyin."""
        set_threads(threads)
        use_g2pw(*g2pw_folders(Path(models_dir), g2pw_dir, g2pw_tokenizer_dir))
        return cls(Models.from_folder(Path(models_dir), version, device, precision))

    # -- voices -------------------------------------------------------------------------------
    def enroll(self, reference: audio.AudioSource, transcript: str, language: str = "zh",
               aux_references: list[audio.AudioSource] | None = None) -> VoiceProfile:  # fmt: skip
        return enroll(self.models, reference, transcript, language, aux_references)

    # -- planning --------------------------------------------------------------------------------
    def plan(self, text: str, profile: VoiceProfile, params: RenderParams) -> list[ChunkReport]:
        """The chunks a render will produce, with their stable ids (no model work)."""
        segments = [s for s in split_text(text, params.text_lang, params.text_split_method) if s.strip()]
        if not segments:
            raise BadText("the text has nothing to read aloud")
        voice = profile.fingerprint()
        sound = params.sound_key()
        return [
            ChunkReport(i, _stable_hash([seg, voice, self.models.model_id, sound, reader_id()])[:32], seg)
            for i, seg in enumerate(segments)
        ]

    # -- rendering -------------------------------------------------------------------------------
    def render(
        self,
        text: str,
        profile: VoiceProfile,
        params: RenderParams | None = None,
        *,
        on_progress: Callable[[int, int], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        chunk_cache: ChunkCache | None = None,
    ) -> RenderResult:
        """The whole text as one waveform; ``on_progress(done, total)`` after every chunk."""
        params = params or RenderParams()
        seed = params.seed if params.seed >= 0 else secrets.randbits(63)
        start = time.perf_counter()
        timings = Timings()
        reports: list[ChunkReport] = []
        pieces: list[np.ndarray] = []
        for chunk in self.stream(text, profile, params, should_cancel=should_cancel, chunk_cache=chunk_cache,
                                 timings=timings, seed=seed):  # fmt: skip
            reports.append(chunk.report)
            pieces.append(chunk.audio)
            if on_progress is not None:
                on_progress(len(reports), chunk.total)
        timings.total_s = time.perf_counter() - start
        wav = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        return RenderResult(wav, SAMPLE_RATE, reports, timings, seed)

    def stream(
        self,
        text: str,
        profile: VoiceProfile,
        params: RenderParams | None = None,
        *,
        should_cancel: Callable[[], bool] | None = None,
        chunk_cache: ChunkCache | None = None,
        timings: Timings | None = None,
        seed: int | None = None,
        token_budget: Callable[[int], int] | None = None,
    ) -> Iterator[RenderedChunk]:
        """Yield rendered chunks in text order as soon as each (and all before it) is ready.

        The options are :meth:`stream_pieces`'s; this groups its pieces into whole chunks.
        """
        parts: list[np.ndarray] = []
        pieces = self.stream_pieces(text, profile, params, should_cancel=should_cancel, chunk_cache=chunk_cache,
                                    timings=timings, seed=seed, token_budget=token_budget)  # fmt: skip
        for piece in pieces:
            parts.append(piece.audio)
            if piece.last:
                yield RenderedChunk(piece.report, parts[0] if len(parts) == 1 else np.concatenate(parts), piece.total)
                parts = []

    def stream_pieces(
        self,
        text: str,
        profile: VoiceProfile,
        params: RenderParams | None = None,
        *,
        should_cancel: Callable[[], bool] | None = None,
        chunk_cache: ChunkCache | None = None,
        timings: Timings | None = None,
        seed: int | None = None,
        token_budget: Callable[[int], int] | None = None,
        first_window_frames: int = FIRST_WINDOW_FRAMES,
        early_start: bool = False,
    ) -> Iterator[AudioPiece]:
        """Yield audio in text order as soon as it exists: the first chunk window by window as the
        vocoder finishes each (``first_window_frames`` of 20 ms first), every later chunk whole.

        ``early_start`` plays the first chunk before its semantic tokens are all decoded (see
        ``_EarlyStart``): sooner audio, but its first moments are an approximation of the exact render,
        so that chunk is not put in ``chunk_cache``.

        ``seed`` overrides ``params.seed`` (a render with seed -1 draws one and passes it here).
        ``token_budget(n_phones) -> n`` is for benchmarks on random weights, which never say EOS: it
        forces EOS after exactly n tokens through the normal stop path and turns the guards off.
        """
        params = params or RenderParams()
        timings = timings if timings is not None else Timings()
        t_start = time.perf_counter()
        if seed is None:
            seed = params.seed if params.seed >= 0 else secrets.randbits(63)
        if not self.models.accepts_profile(profile.model_id):
            raise BadText("this voice was enrolled with other model weights; enroll it again")

        t0 = time.perf_counter()
        chunks = [_Chunk(report) for report in self.plan(text, profile, params)]
        timings.frontend_s += time.perf_counter() - t0
        for chunk in chunks:
            chunk.seed = int(chunk.report.id[:15], 16) ^ (seed & (2**62 - 1))
            if chunk_cache is not None:
                cached = chunk_cache.get(chunk.report.id)
                if cached is not None:
                    chunk.audio = cached
                    chunk.report.cached = True
                    chunk.report.samples = len(cached)

        def emit(chunk: _Chunk, audio: np.ndarray, last: bool) -> AudioPiece:
            if timings.first_audio_s is None:
                timings.first_audio_s = time.perf_counter() - t_start
            return AudioPiece(chunk.report, audio, last, len(chunks))

        todo = [c for c in chunks if c.audio is None]
        batches = _ramped_batches(todo, params.batch_size)
        ge = self._timbre(profile)
        next_out = 0
        for batch in batches:
            if should_cancel is not None and should_cancel():
                raise Cancelled("rendering was cancelled")
            while next_out < len(chunks) and chunks[next_out].audio is not None:
                yield emit(chunks[next_out], chunks[next_out].audio, True)  # cached chunks before this batch
                next_out += 1
            if not batch:
                continue
            self._features(batch, todo, params, timings)
            early = None
            if early_start and next_out == 0 and batch[0] is chunks[0]:
                head = batch[0]
                early = _EarlyStart(round(EXPECTED_TOKENS_PER_PHONE * head.report.phones), params.speed_factor,
                                    partial(self._vocode, chunk=head, params=params, ge=ge, timings=timings,
                                            first_frames=first_window_frames))  # fmt: skip
            decoding = self._semantic(batch, profile, params, timings, token_budget, early)
            while True:  # relay the early audio, if any, until the tokens are all there
                try:
                    yield emit(batch[0], next(decoding), False)
                except StopIteration as finished:
                    tokens = finished.value
                    break
            for chunk in batch:
                live = chunk is chunks[next_out]  # everything before it is out: play it as it is vocoded
                first = first_window_frames if next_out == 0 else None
                codes = tokens[chunk.report.index]
                started = early is not None and early.prefix is not None and chunk is batch[0]
                parts = [early.played] if started else []
                skip = len(early.played) // audio.HOP if started else 0
                if started and not torch.equal(codes[: len(early.prefix)], early.prefix):
                    chunk.report.problems.append("early audio came from an attempt the guards rejected")
                for part in self._vocode(codes, chunk, params, ge, timings, first if live else None, skip):
                    part = early.hand_over(part) if started else part
                    parts.append(part)
                    if live:
                        yield emit(chunk, part, False)
                gap = np.zeros(int(params.fragment_interval * SAMPLE_RATE), dtype=np.float32)
                chunk.audio = np.concatenate([*parts, gap])
                chunk.report.samples = len(chunk.audio)
                if chunk_cache is not None and not started:
                    chunk_cache.put(chunk.report.id, chunk.audio)
                if live:
                    yield emit(chunk, gap, True)
                    next_out += 1
                while next_out < len(chunks) and chunks[next_out].audio is not None:
                    yield emit(chunks[next_out], chunks[next_out].audio, True)
                    next_out += 1

    # -- steps ---------------------------------------------------------------------------------------
    def _features(self, batch: list[_Chunk], todo: list[_Chunk], params: RenderParams, timings: Timings) -> None:
        """Phones and BERT features of ``batch``, computed with the rest of their feature groups.

        BERT costs about the same for one segment as for a dozen, so features go in fixed groups of
        ``FEATURE_GROUP`` chunks of ``todo`` (the first chunk alone, for early audio) whatever the T2S
        batch size is: the same text then gets the same features, and batch-1 renders stay cheap.
        """
        def group_of(i: int) -> int:
            return 0 if i == 0 else 1 + (i - 1) // FEATURE_GROUP

        wanted = {group_of(i) for i, c in enumerate(todo) if any(c is b for b in batch)}
        group = [c for i, c in enumerate(todo) if c.features is None and group_of(i) in wanted]
        if not group:
            return
        t0 = time.perf_counter()
        found = text_features_many(self.models.bert, [c.report.text for c in group], params.text_lang)
        for chunk, features in zip(group, found, strict=True):
            chunk.features = features
            chunk.report.phones = len(features.phone_ids)
            if not features.phone_ids:
                raise BadText(f"chunk {chunk.report.index + 1} ({chunk.report.text!r}) has nothing to read aloud")
        timings.bert_s += time.perf_counter() - t0

    @torch.inference_mode()
    def _timbre(self, profile: VoiceProfile) -> torch.Tensor:
        m = self.models
        specs = [s.to(m.device, m.dtype) for s in profile.refer_specs]
        embs = [e.to(m.device, m.dtype) for e in profile.sv_embs] if profile.sv_embs else None
        if m.sovits.config.is_pro and embs is None:
            raise BadText("this voice has no speaker vector; enroll it again with the v2Pro models")
        return m.sovits.timbre(specs, embs if m.sovits.config.is_pro else None)

    def _requests(self, batch: list[_Chunk], profile: VoiceProfile, caps: list[int]) -> list[T2SRequest]:
        prompt_ids = torch.tensor(profile.prompt_phone_ids, dtype=torch.long)
        out = []
        for chunk, cap in zip(batch, caps, strict=True):
            features = chunk.features
            assert features is not None
            phones = torch.cat([prompt_ids, torch.tensor(features.phone_ids, dtype=torch.long)])
            bert = torch.cat([profile.prompt_bert.to(features.bert), features.bert], dim=1)
            out.append(T2SRequest(phones, bert, profile.prompt_semantic, max_new_tokens=cap))
        return out

    def _semantic(self, batch: list[_Chunk], profile: VoiceProfile, params: RenderParams, timings: Timings,
                  token_budget: Callable[[int], int] | None,
                  early: _EarlyStart | None = None) -> Generator[np.ndarray, None, dict[int, torch.Tensor]]:  # fmt: skip
        """Semantic tokens of each chunk (by chunk index, the generator's return value): one batched
        decode, then the guards' retries. Yields the early audio of ``early`` when it starts."""
        options = DecodingOptions(params.top_k, params.top_p, params.temperature, params.repetition_penalty)
        results = yield from self._decode(batch, profile, options, batch[0].seed, timings, token_budget, early)
        tokens = {c.report.index: r.tokens for c, r in zip(batch, results, strict=True)}
        if token_budget is None:  # guards; retries go one chunk at a time so they do not depend on batching
            if options.top_k == 1:  # greedy decoding would repeat itself: retries must sample
                options = DecodingOptions(5, params.top_p, params.temperature, params.repetition_penalty)
            for chunk, result in zip(batch, results, strict=True):
                verdict = guards.judge(result.tokens, chunk.report.phones, result.hit_cap)
                for attempt in range(1, params.max_retries + 1):
                    if verdict.ok:
                        break
                    chunk.report.problems.append(verdict.problem or "")
                    chunk.report.retries += 1
                    seed = (chunk.seed + attempt * 7919) % 2**63
                    retried = (yield from self._decode([chunk], profile, options, seed, timings, None))[0]
                    verdict = guards.judge(retried.tokens, chunk.report.phones, retried.hit_cap)
                    if verdict.ok or _better(retried.tokens, tokens[chunk.report.index]):
                        tokens[chunk.report.index] = retried.tokens
                if not verdict.ok:
                    chunk.report.problems.append(f"{verdict.problem} (kept the best attempt)")
        for chunk in batch:
            codes = tokens[chunk.report.index]
            chunk.report.tokens = len(codes)
            chunk.report.semantic = codes.tolist()
        return tokens

    def _decode(self, chunks: list[_Chunk], profile: VoiceProfile, options: DecodingOptions, seed: int,
                timings: Timings, token_budget: Callable[[int], int] | None,
                early: _EarlyStart | None = None) -> Generator[np.ndarray, None, list[T2SResult]]:  # fmt: skip
        """One batched T2S call; caps from the phone counts (or the benchmark budget). Returns the
        results; yields ``early``'s audio if it starts during the decode (its time is not T2S time)."""
        m = self.models
        if token_budget is not None:
            budgets = [token_budget(c.report.phones) for c in chunks]
            caps, hook = [b + 1 for b in budgets], _force_eos_after(budgets, m.t2s.config.eos)
        else:
            caps, hook = [guards.token_cap(c.report.phones, 50 * m.max_sec) for c in chunks], None
        generator = torch.Generator(device=m.device).manual_seed(seed)
        t0 = time.perf_counter()
        state: DecodeState | None = None
        for state in decode_steps(m.t2s, self._requests(chunks, profile, caps), options, generator, logits_hook=hook):
            if early is not None and early.due(state):
                timings.t2s_s += time.perf_counter() - t0
                yield from early.start(state.partial(0))
                t0 = time.perf_counter()
        timings.t2s_s += time.perf_counter() - t0
        results = state.finished() if state is not None else []
        timings.t2s_tokens += sum(len(r.tokens) for r in results)
        return results

    def _vocode(self, codes: torch.Tensor, chunk: _Chunk, params: RenderParams, ge: torch.Tensor,
                timings: Timings, first_frames: int | None = None, start_frame: int = 0) -> Iterator[np.ndarray]:  # fmt: skip
        """A chunk's waveform, window by window (see ``SoVITS.vocode_windows``); SoVITS time is counted
        per window, so a consumer's time between windows does not count."""
        m = self.models
        assert chunk.features is not None
        t0 = time.perf_counter()
        with torch.inference_mode():
            generator = torch.Generator(device=m.device).manual_seed(chunk.seed)
            phones = torch.tensor(chunk.features.phone_ids, dtype=torch.long, device=m.device)[None]
            prior = m.sovits.prior(codes.to(m.device)[None, None], phones, ge, params.speed_factor)
            z = m.sovits.latent(prior, ge, params.noise_scale, generator)
            windows = m.sovits.vocode_windows(z, ge, "auto", first_frames=first_frames, start_frame=start_frame)
        while True:
            with torch.inference_mode():
                wav = next(windows, None)
            if wav is None:
                break
            # The generator ends in tanh, so samples never leave [-1, 1]; no whole-chunk peak is needed.
            part = wav[0, 0].float().cpu().numpy().astype(np.float32, copy=False)
            timings.sovits_s += time.perf_counter() - t0
            yield part
            t0 = time.perf_counter()
        timings.sovits_s += time.perf_counter() - t0


def _ramped_batches(todo: list[_Chunk], batch_size: int) -> list[list[_Chunk]]:
    """Chunks in text order: the first alone (so audio starts early), then batches doubling up to
    ``batch_size``, so each batch is decoded while the audio before it plays (a full batch at once
    would leave a listener waiting after the first chunk)."""
    batches, start, size = [todo[:1]], 1, 2
    while start < len(todo):
        size = min(size, batch_size)
        batches.append(todo[start : start + size])
        start, size = start + size, size * 2
    return batches


def _better(candidate: torch.Tensor, best: torch.Tensor) -> bool:
    """Among flawed attempts keep the one with the fewest repeats (then the shorter one)."""
    return (guards.longest_run(candidate), len(candidate)) < (guards.longest_run(best), len(best))


def _force_eos_after(budgets: list[int], eos: int) -> LogitsHook:
    """Benchmarks: make EOS the sure choice once a row has its budget of tokens (upstream's harness rule)."""
    budget = torch.tensor(budgets)

    def hook(logits: torch.Tensor, items: torch.Tensor, step: int) -> None:
        done = (budget.to(items.device)[items] <= step)
        logits[:, eos] = torch.where(done, torch.full_like(logits[:, eos], 1e4), torch.full_like(logits[:, eos], -1e4))

    return hook
