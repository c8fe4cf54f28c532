"""The engine's one entry point: GPT-SoVITS loaded once; enroll voices, plan and render text.

:meth:`Engine.stream_pieces` yields audio as soon as it exists (the first sentence plays while the
rest renders); :meth:`Engine.stream` groups it into whole chunks; :meth:`Engine.render` assembles the
whole file. Every chunk has a stable id (its text, the voice, the weights and the parameters that
change its sound); with a :class:`~engine.rendering.caches.ChunkCache`, re-rendering an edited diary
synthesises only changed chunks. The steps themselves live in :mod:`engine.rendering`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from engine import audio
from engine.enroll import enroll
from engine.errors import BadText
from engine.model_files import g2pw_folders
from engine.params import RenderParams
from engine.profile import VoiceProfile
from engine.rendering.caches import ChunkCache
from engine.rendering.early_start import SAMPLE_RATE
from engine.rendering.planning import PausePoint, draw_seed, plan_chunks, prepare_chunks
from engine.rendering.results import AudioPiece, ChunkReport, RenderedChunk, RenderResult, Timings
from engine.rendering.stream import RenderStream
from engine.runtime import Models, set_threads
from engine.text import use_g2pw

FIRST_WINDOW_FRAMES = 25  # the first 0.5 s of a stream is vocoded alone, so it plays sooner


class Engine:
    """GPT-SoVITS loaded once; enroll voices and render text with them. Holds no per-request state."""

    def __init__(self, models: Models) -> None:
        self.models = models

    @classmethod
    def load(cls, models_dir: Path, device: str = "auto", precision: str = "auto", version: str | None = None,
             threads: int | None = None, g2pw_dir: Path | None = None,
             g2pw_tokenizer_dir: Path | None = None, matmul: str = "auto") -> Engine:  # fmt: skip
        """``g2pw_dir``/``g2pw_tokenizer_dir``: Chinese polyphone model and its tokenizer (default
        ``<models>/G2PWModel`` and the models folder's BERT); no such folder reads with pypinyin.
        ``matmul``: the linear kernels of the GPT and BERT on CPU (:mod:`engine.kernels`)."""
        set_threads(threads)
        use_g2pw(*g2pw_folders(Path(models_dir), g2pw_dir, g2pw_tokenizer_dir))
        return cls(Models.from_folder(Path(models_dir), version, device, precision, matmul))

    # -- voices -------------------------------------------------------------------------------
    def enroll(self, reference: audio.AudioSource, transcript: str, language: str = "zh",
               aux_references: list[audio.AudioSource] | None = None) -> VoiceProfile:  # fmt: skip
        return enroll(self.models, reference, transcript, language, aux_references)

    # -- planning --------------------------------------------------------------------------------
    def plan(self, text: str, profile: VoiceProfile, params: RenderParams) -> list[ChunkReport]:
        """The chunks a render will produce, with their stable ids (no model work)."""
        return plan_chunks(text, profile, params, self.models.model_id)

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
        seed = draw_seed(params)
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
        early_start_at: int | None = None,
        pause_point: PausePoint | None = None,
    ) -> Iterator[AudioPiece]:
        """Yield audio in text order as soon as it exists: the first chunk window by window as the
        vocoder finishes each (``first_window_frames`` of 20 ms first), every later chunk whole.

        ``early_start`` plays the first chunk before its semantic tokens are all decoded (see
        :class:`~engine.rendering.early_start.EarlyStart`): sooner audio, but its first moments are an
        approximation of the exact render, so that chunk is cached under a key of its own (a re-read
        that starts early reuses it, an exact one does not). Its moment
        comes from the clock; the first piece's ``report.early_tokens`` says what it was, and
        ``early_start_at`` replays it (an early start after exactly that many tokens: the same audio).

        ``seed`` overrides ``params.seed`` (a render with seed -1 draws one and passes it here).
        ``token_budget(n_phones) -> n`` is for benchmarks on random weights, which never say EOS: it
        forces EOS after exactly n tokens through the normal stop path and turns the guards off.
        ``pause_point()`` is called between decoding steps and vocoder windows; it may run other
        work (another render included) before it returns (see :data:`~engine.rendering.planning.PausePoint`).
        """
        params = params or RenderParams()
        timings = timings if timings is not None else Timings()
        started_at = time.perf_counter()
        seed = draw_seed(params) if seed is None else seed
        if not self.models.accepts_profile(profile.model_id):
            raise BadText("this voice was enrolled with other model weights; enroll it again")
        t0 = time.perf_counter()
        reports = self.plan(text, profile, params)
        timings.frontend_s += time.perf_counter() - t0
        early_start = early_start or early_start_at is not None
        chunks = prepare_chunks(reports, seed, chunk_cache, early_start)
        run = RenderStream(self.models, profile, params, chunks, timings, started_at, chunk_cache, should_cancel,
                           token_budget, first_window_frames, early_start, early_start_at, pause_point)  # fmt: skip
        yield from run.pieces()
