"""Every call into the engine, in one place, so that wiring changes touch only this module.

Outside ``worker/`` nothing imports the engine: the API, the command line and the embedded client
come through here (rendering, export, :func:`detect`), or through the small housekeeping modules
beside it (:mod:`worker.watermark`: reports, marking a file, keys; :mod:`worker.models_admin`).

The engine loads lazily, once per worker process, on the first job: never at import and never in
a parent process before Celery forks its children (CUDA cannot survive a fork). Voice profiles
(and fine-tuned weights) stay warm in a small LRU keyed by the objects they came from.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from shared.settings import Settings

_engine_lock = threading.Lock()
_engine: Any = None
_engine_key: tuple[str, str] | None = None


def get_engine(settings: Settings) -> Any:  # noqa: ANN401 - engine.facade.Engine, imported lazily
    """The process's engine, loaded on first use (after the warm-up, when one is running)."""
    with _engine_lock:
        return _loaded(settings)


def _loaded(settings: Settings) -> Any:  # noqa: ANN401 - called holding _engine_lock
    global _engine, _engine_key
    key = (str(settings.models_dir), settings.device, settings.matmul)
    if _engine is None or _engine_key != key:
        from engine.facade import Engine

        _engine = Engine.load(settings.models_dir, device=settings.device, precision=settings.precision,
                              threads=settings.threads, matmul=settings.matmul, g2pw_dir=settings.g2pw_dir,
                              g2pw_tokenizer_dir=settings.g2pw_tokenizer_dir)
        _engine_key = key
    return _engine


class WarmCache:
    """The most recently used voice profiles (or fine-tuned models) of this process, keyed by
    (voice id, object key): a new fine-tune or enrollment writes a new key, so nothing goes stale."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._items: OrderedDict[tuple[str, ...], Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple[str, ...], load: Callable[[], Any]) -> Any:  # noqa: ANN401
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
        value = load()
        with self._lock:
            self.misses += 1
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def discard_voice(self, voice_id: str) -> None:
        with self._lock:
            for key in [k for k in self._items if k[0] == voice_id]:
                del self._items[key]


_profiles: WarmCache | None = None
_finetuned: WarmCache | None = None


def profiles(settings: Settings) -> WarmCache:
    global _profiles
    if _profiles is None:
        _profiles = WarmCache(settings.profile_cache_size)
    return _profiles


def finetuned_engines(settings: Settings) -> WarmCache:
    """Engines over members' fine-tuned weights; they share the base engine's feature extractors."""
    global _finetuned
    if _finetuned is None:
        _finetuned = WarmCache(settings.finetuned_cache_size)
    return _finetuned


def forget_voice(settings: Settings, voice_id: str) -> None:
    """Drop what this process keeps warm for a voice (after a new enrollment or fine-tune)."""
    profiles(settings).discard_voice(voice_id)
    finetuned_engines(settings).discard_voice(voice_id)


def engine_for(settings: Settings, voice_id: str, finetune_key: str | None,
               fetch: Callable[[], bytes]) -> Any:  # noqa: ANN401 - engine.facade.Engine
    """The engine that renders a voice: the base one, or one over the voice's fine-tuned weights."""
    base = get_engine(settings)
    if not finetune_key:
        return base

    def load() -> Any:  # noqa: ANN401
        from engine.facade import Engine
        from engine.finetune import load_finetuned

        return Engine(load_finetuned(settings.models_dir, fetch(), base=base.models))

    return finetuned_engines(settings).get((voice_id, finetune_key), load)


def enroll(settings: Settings, audio: bytes, transcript: str, language: str) -> bytes:
    """A voice profile, serialised, from a reference recording and its transcript."""
    profile = get_engine(settings).enroll(audio, transcript, language)
    return profile.to_bytes()


def load_profile(settings: Settings, voice_id: str, object_key: str, fetch: Callable[[], bytes]) -> Any:  # noqa: ANN401
    from engine.profile import VoiceProfile

    return profiles(settings).get((voice_id, object_key), lambda: VoiceProfile.from_bytes(fetch()))


@dataclass
class Rendered:
    data: bytes
    duration_s: float


def render(settings: Settings, text: str, profile: Any, params: dict[str, Any], fmt: str,  # noqa: ANN401
           mark: int | None, job_id: str, on_progress: Callable[[int, int], None],
           should_cancel: Callable[[], bool], chunk_cache: Any = None, engine: Any = None) -> Rendered:  # noqa: ANN401
    """Synthesise ``text`` in the profile's voice and export it (label, loudness, watermark, encode).

    ``engine`` is the voice's (see :func:`engine_for`; the base engine when None). ``chunk_cache``
    (get/put of float32 chunk audio by the engine's stable chunk id) lets a job taken over after a
    crash reuse the chunks the previous attempt finished.
    """
    from engine.params import RenderParams

    engine = engine if engine is not None else get_engine(settings)
    result = engine.render(text, profile, RenderParams(**params), on_progress=on_progress,
                                         should_cancel=should_cancel, chunk_cache=chunk_cache)
    data = export(settings, result.audio, result.sample_rate, fmt, mark, job_id)
    return Rendered(data=data, duration_s=float(result.duration_s))


def export(settings: Settings, audio: Any, sample_rate: int, fmt: str, mark: int | None,  # noqa: ANN401
           job_id: str) -> bytes:
    from engine.export import export_audio

    keyring, payload, signer = _marking(settings, mark)
    return export_audio(audio, sample_rate, fmt, loudness_lufs=settings.loudness_lufs, keyring=keyring,
                        payload=payload, label=job_id, explicit_label=settings.explicit_label, c2pa_signer=signer)


def _marking(settings: Settings, mark: int | None) -> tuple[Any, bytes | None, Any]:
    """The watermark keyring and payload, and the C2PA signer, that this server's settings ask for."""
    keyring = watermark_keyring(settings) if settings.watermark else None
    payload = mark.to_bytes(6, "big") if (settings.watermark and mark is not None) else None
    return keyring, payload, (c2pa_signer(settings) if settings.c2pa else None)


@dataclass
class StoredFile:
    """A streamed render's stored file: the streamed bytes with their first ``replace`` bytes
    replaced by ``head`` (the container's header as rewritten at close, then the AIGC label), or,
    with a C2PA manifest, the whole signed file spooled to a temporary ``file``."""

    head: bytes
    replace: int
    size: int  # bytes in the stored file
    duration_s: float
    file: BinaryIO | None = None  # the whole stored file, only when C2PA signed it (see render_streaming)


OnPiece = Callable[[bytes, float], None]


@dataclass
class Opening:
    """How a streamed render opens. Interactive ones start early (the engine's early start) and so take
    their loudness from a short lead (``MIN_LOUDNESS_S``, 0.5 s, against ``LEAD_S``, 1 s): the first
    byte goes out with the first piece of audio. The early start's moment comes from the clock: the
    first attempt reports it to ``on_early_start`` before its first byte, a takeover replays it."""

    early_start: bool = False
    replay_at: int | None = None  # tokens after which an earlier attempt of this job started early
    on_early_start: Callable[[int], None] | None = None

    def lead_s(self) -> float:
        from engine.exporting import LEAD_S, MIN_LOUDNESS_S

        return MIN_LOUDNESS_S if self.early_start else LEAD_S


def job_seed(params: dict[str, Any], job_id: str) -> int:
    """The request's seed, or one drawn from the job's id for seed -1: random per job, but the same
    for every attempt of it, so a taken-over job streams the same bytes again."""
    seed = int(params.get("seed", -1))
    return seed if seed >= 0 else int(hashlib.sha256(job_id.encode()).hexdigest()[:15], 16)


def render_streaming(settings: Settings, text: str, profile: Any, params: dict[str, Any], fmt: str,  # noqa: ANN401
                     mark: int | None, job_id: str, on_piece: OnPiece, on_progress: Callable[[int, int], None],
                     should_cancel: Callable[[], bool], chunk_cache: Any = None,  # noqa: ANN401
                     engine: Any = None, pause_point: Callable[[], None] | None = None,  # noqa: ANN401
                     opening: Opening | None = None) -> StoredFile:
    """Like :func:`render`, but each encoded piece goes to ``on_piece(bytes, progress)`` as soon as
    the export chain has it (after the lead of ``opening``, see :class:`Opening`): their concatenation is a playable
    file, and the stored one differs from it only in its first bytes, or is signed whole from a
    temporary file when C2PA is on (see :class:`StoredFile`). ``pause_point`` is the engine's
    (:data:`engine.rendering.planning.PausePoint`): the render calls it between decoding steps and
    may run other work inside it (see :mod:`worker.lanes`)."""
    from engine.audio import SAMPLE_RATE
    from engine.export import C2PA_FORMATS, StreamedLabel, sign_spooled
    from engine.exporting import PieceExporter

    engine = engine if engine is not None else get_engine(settings)
    opening = opening or Opening()
    keyring, payload, signer = _marking(settings, mark)
    exporter = PieceExporter(SAMPLE_RATE, fmt, loudness_lufs=settings.loudness_lufs, keyring=keyring,
                             payload=payload, explicit_label=settings.explicit_label, lead_s=opening.lead_s())
    # The label is digested as the bytes pass, in every format: nothing grows with the diary. A
    # C2PA manifest hashes the whole file: the stream is spooled to a temporary file for it.
    label = StreamedLabel(fmt)
    spool = tempfile.TemporaryFile() if signer is not None and fmt in C2PA_FORMATS else None

    def emit(data: bytes, progress: float) -> None:
        if data:
            label.update(data)
            if spool is not None:
                spool.write(data)
            on_piece(data, progress)

    try:
        samples = _export_pieces(engine, exporter, text, profile, params, job_id, emit, on_progress, should_cancel,
                                 chunk_cache, pause_point, opening)  # fmt: skip
        head, replace = label.finish(exporter, keyring=keyring, label=job_id)
        duration_s = samples / SAMPLE_RATE
        if spool is None:
            return StoredFile(head=head, replace=replace, size=len(head) + label.streamed_bytes - replace,
                              duration_s=duration_s)  # fmt: skip
        signed = sign_spooled(spool, head, replace, c2pa_signer=signer, keyring=keyring, label=label.label)
        size = signed.seek(0, 2)
        signed.seek(0)
        return StoredFile(head=b"", replace=0, size=size, duration_s=duration_s, file=signed)
    finally:
        if spool is not None:
            spool.close()


def _export_pieces(engine: Any, exporter: Any, text: str, profile: Any, params: dict[str, Any],  # noqa: ANN401
                   job_id: str, emit: OnPiece, on_progress: Callable[[int, int], None],
                   should_cancel: Callable[[], bool], chunk_cache: Any,  # noqa: ANN401
                   pause_point: Callable[[], None] | None, opening: Opening) -> int:
    """Render ``text`` through ``exporter``, each encoded piece to ``emit``; the samples rendered."""
    from engine.params import RenderParams

    samples = done = 0
    told = opening.replay_at is not None  # a replayed start is on record already
    for piece in engine.stream_pieces(text, profile, RenderParams(**params), should_cancel=should_cancel,
                                      chunk_cache=chunk_cache, seed=job_seed(params, job_id),
                                      pause_point=pause_point, early_start=opening.early_start,
                                      early_start_at=opening.replay_at):
        if not told and piece.report.early_tokens is not None and opening.on_early_start is not None:
            opening.on_early_start(piece.report.early_tokens)
        told = told or piece.report.early_tokens is not None
        if not samples:  # the chunk count is known before any chunk is done (an early start plays first)
            on_progress(0, piece.total)
        samples += piece.audio.shape[0]
        done += piece.last
        emit(exporter.push(piece.audio), done / piece.total)
        if piece.last:
            on_progress(done, piece.total)
    emit(exporter.finish(), 1.0)
    return samples


def c2pa_signer(settings: Settings) -> Any:  # noqa: ANN401 - engine.watermark.c2pa.Signer
    """The server's C2PA signer, made in the data folder on first use."""
    from engine.watermark.c2pa import load_signer

    return load_signer(settings.data_dir)


def watermark_keyring(settings: Settings) -> Any:  # noqa: ANN401
    """The server's watermark keys, made in the data folder on first use."""
    from engine.watermark.keys import load_keyring

    return load_keyring(settings.data_dir)


def decode_audio(data: bytes) -> tuple[Any, int]:
    """Samples and rate of any file soundfile reads, or (with ffmpeg installed) anything ffmpeg reads."""
    import io
    import shutil
    import subprocess

    import soundfile as sf

    try:
        return sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError):
        if shutil.which("ffmpeg") is None:
            raise
    done = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", "pipe:0", "-f", "wav", "-c:a", "pcm_f32le",
                           "-"], input=data, capture_output=True)  # fmt: skip
    if done.returncode != 0:
        raise ValueError("neither soundfile nor ffmpeg can decode it")
    return sf.read(io.BytesIO(done.stdout), dtype="float32", always_2d=False)


def detect(settings: Settings, audio: bytes, speed_search: bool = False) -> Any:  # noqa: ANN401
    """Look for this server's watermark in an audio file: the one detection entry point.

    Returns the engine's ``engine.watermark.Detection``: ``present``, ``mac_ok``, ``mark`` (the
    job's 48-bit mark, only when its MAC checked), ``z``, ``false_positive_bound`` and the rest.
    ``speed_search`` also tries playback speeds 0.95-1.05 (about 50 times slower).
    """
    from engine.watermark.detect import detect as detect_mark

    samples, sample_rate = decode_audio(audio)
    return detect_mark(samples, sample_rate, watermark_keyring(settings), speed_search=speed_search)


@dataclass
class LabelCheck:
    fields: dict[str, str]  # the AIGC label's fields (ProduceID: the job id, ...)
    verified: bool  # its keyed hash matches this file under one of our keys


def read_label(settings: Settings, audio: bytes) -> LabelCheck | None:
    """The AIGC label in a file's metadata and whether our keys verify it; None when it has none."""
    from engine.export import read_label as read_metadata_label
    from engine.export import verify_label

    label = read_metadata_label(audio)
    if label is None:
        return None
    return LabelCheck(fields=label.fields(), verified=verify_label(audio, watermark_keyring(settings)))


def finetune(settings: Settings, items: Sequence[tuple[bytes, str, str]], params: dict[str, Any],
             on_progress: Callable[[int, int], None], should_cancel: Callable[[], bool]) -> bytes:
    """Fine-tuned weights for a voice, as bytes (the zip of :func:`engine.finetune.finetune`).

    ``items`` are its clips as (audio, transcript, language); a lazy sequence (``worker.dataset``)
    fetches each from storage only when data preparation reaches it. The warm base engine lends its
    feature extractors, so only the trainable models load here.
    """
    from engine.finetune import finetune as run_finetune

    return run_finetune(settings.models_dir, items, params=params,
                        device=settings.device, on_progress=on_progress, should_cancel=should_cancel,
                        base=get_engine(settings).models)


WARM_UP_TEXT = "今天天气很好。"
WARM_UP_TOKENS_PER_PHONE = 2  # enough to run every kernel; a warm-up's audio is thrown away


def warm_up(settings: Settings) -> None:
    """Load the engine and run each model once (an enrollment of a synthetic clip, a short render),
    so the first real request finds the weights in memory and the kernels compiled. A job that
    comes meanwhile waits in :func:`get_engine` until this is done, rather than share the models."""
    with _engine_lock:
        if _engine is not None:  # a job came first and loaded it: it warms the kernels; never share them
            return
        _warm(_loaded(settings))


def _warm(engine: Any) -> None:  # noqa: ANN401
    import io

    import numpy as np
    import soundfile as sf

    from engine.params import RenderParams

    rate = 32000
    t = np.arange(3 * rate) / rate
    phase = 2 * np.pi * np.cumsum(140 + 20 * np.sin(np.pi * t)) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.55 + 0.45 * np.sin(8 * np.pi * t))
    clip = io.BytesIO()
    sf.write(clip, (0.2 * voiced).astype(np.float32), rate, format="WAV")
    profile = engine.enroll(clip.getvalue(), "今天天气很好，我们去公园。", "zh")
    for _ in engine.stream_pieces(WARM_UP_TEXT, profile, RenderParams(), seed=0,
                                  token_budget=lambda phones: WARM_UP_TOKENS_PER_PHONE * phones):
        pass
