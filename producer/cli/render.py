"""`echodiary render` and `echodiary demo`: render a diary in this process, no servers needed."""

from __future__ import annotations

import secrets
import sys
import time
from pathlib import Path

import typer

FORMATS = ("wav", "flac", "ogg", "mp3")


def _progress():  # noqa: ANN202 - rich.progress.Progress
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("chunks"),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), transient=False)  # fmt: skip


def render_to_file(
    text: str,
    reference: Path | bytes,
    prompt_text: str,
    output: Path,
    *,
    models_dir: Path,
    prompt_lang: str = "zh",
    params: dict | None = None,
    quiet: bool = False,
) -> dict:
    """Enroll, render with a progress bar, export (loudness, watermark, AIGC label) and write ``output``."""
    from rich.console import Console

    from engine.export import export_audio
    from engine.render import Engine, FolderChunkCache, RenderParams
    from engine.watermark.keys import load_keyring
    from engine.watermark.payload import pack_payload
    from shared.settings import get_settings

    settings = get_settings()
    console = Console(stderr=True, quiet=quiet)
    fmt = output.suffix.lstrip(".").lower() or "wav"
    if fmt not in FORMATS:
        raise typer.BadParameter(f"output format {fmt!r} is not supported; use {', '.join(FORMATS)}")
    started = time.perf_counter()
    with console.status("loading models"):
        engine = Engine.load(models_dir, device=settings.device, precision=settings.precision, threads=settings.threads,
                             g2pw_dir=settings.g2pw_dir, g2pw_tokenizer_dir=settings.g2pw_tokenizer_dir)
    with console.status("enrolling the voice"):
        profile = engine.enroll(reference, prompt_text, prompt_lang)
    render_params = RenderParams(**(params or {}))
    cache = FolderChunkCache(settings.data_dir / "chunk-cache")
    with _progress() as progress:
        task = progress.add_task("rendering", total=None)
        result = engine.render(text, profile, render_params, chunk_cache=cache,
                               on_progress=lambda done, total: progress.update(task, completed=done, total=total))
    mark = secrets.randbits(48)
    keyring = load_keyring(settings.data_dir) if settings.watermark else None
    data = export_audio(result.audio, result.sample_rate, fmt, loudness_lufs=settings.loudness_lufs,
                        keyring=keyring, payload=pack_payload(mark) if keyring else None,
                        label=f"local-{mark:012x}", explicit_label=settings.explicit_label)  # fmt: skip
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(data)
    wall = time.perf_counter() - started
    summary = {
        "output": str(output),
        "duration_s": round(result.duration_s, 2),
        "chunks": len(result.chunks),
        "synthesised": result.synthesised,
        "retried": len(result.retried),
        "render_s": round(result.timings.total_s, 2),
        "first_audio_s": round(result.timings.first_audio_s or 0.0, 2),
        "wall_s": round(wall, 2),
        "watermark": f"{mark:012x}" if keyring else None,
    }
    console.print(f"wrote {output}: {summary['duration_s']} s of audio, {summary['chunks']} chunks "
                  f"({summary['synthesised']} synthesised, {summary['retried']} retried) in {summary['wall_s']} s")
    return summary


def register(app: typer.Typer) -> None:
    @app.command()
    def render(
        diary: Path = typer.Argument(..., help="The diary text file (UTF-8), or - for standard input."),
        voice: Path = typer.Option(..., "--voice", help="A 3-10 s recording of your voice (wav, flac, ogg, mp3)."),
        prompt_text: str = typer.Option(..., "--prompt-text", help="Exactly what the recording says."),
        output: Path = typer.Option(Path("diary.flac"), "-o", "--output", help="Output file: .wav .flac .ogg .mp3"),
        prompt_lang: str = typer.Option("zh", help="Language of the recording: zh or en."),
        text_lang: str = typer.Option("zh", help="Language of the diary: zh, all_zh, en or auto."),
        seed: int = typer.Option(-1, help="Same seed, same audio; -1 picks one."),
        batch_size: int = typer.Option(8, help="Chunks decoded together."),
        top_k: int = typer.Option(15),
        speed_factor: float = typer.Option(1.0, help="Speaking rate (0.5-2.0)."),
    ) -> None:
        """Render a diary entry in your voice, in this process (no servers needed)."""
        from engine.errors import EngineError
        from shared.settings import get_settings

        text = sys.stdin.read() if str(diary) == "-" else _read_text(diary)
        params = {"text_lang": text_lang, "seed": seed, "batch_size": batch_size, "top_k": top_k,
                  "speed_factor": speed_factor}  # fmt: skip
        try:
            render_to_file(text, voice, prompt_text, output, models_dir=get_settings().models_dir,
                           prompt_lang=prompt_lang, params=params)  # fmt: skip
        except (EngineError, FileNotFoundError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc

    @app.command()
    def demo(
        output: Path = typer.Option(None, "-o", "--output", help="Where to write the demo (default: data/demo.flac)."),
    ) -> None:
        """Render a short diary with a synthetic voice; uses ./models when complete, else tiny random models."""
        from engine.model_files import detect_version, init_random
        from shared.settings import get_settings

        settings = get_settings()
        models_dir = settings.models_dir
        if not models_dir.is_dir() or detect_version(models_dir) is None:
            models_dir = settings.data_dir / "demo-models"
            if detect_version(models_dir) is None:
                typer.echo(f"No GPT-SoVITS weights in {settings.models_dir} (see README, 'Models'); writing tiny "
                           f"random models to {models_dir} to show the pipeline. They speak noise.", err=True)
                init_random(models_dir, size="tiny", version="v2", seed=0)
        reference = _demo_reference()
        text = ("2025年3月5日，星期三，晴。早上七点半起床，跑了3.5公里。中午和朋友吃了一碗牛肉面，花了25元。"
                "下午读了一会儿书，晚上给妈妈打了电话。今天很开心！")  # fmt: skip
        out = output or settings.data_dir / "demo.flac"
        summary = render_to_file(text, reference, "今天天气很好，我们去公园散步。", out, models_dir=models_dir,
                                 params={"seed": 42})  # fmt: skip
        typer.echo(str(summary["output"]))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise typer.BadParameter(f"{path} is not UTF-8 text") from exc


def _demo_reference() -> bytes:
    """A 4 s voiced signal standing in for a recording (a harmonic tone with a moving pitch)."""
    import io

    import numpy as np
    import soundfile

    sr = 32000
    t = np.arange(4 * sr) / sr
    phase = 2 * np.pi * np.cumsum(140 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / sr
    wave = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t) ** 2)
    buf = io.BytesIO()
    soundfile.write(buf, (0.3 * wave).astype(np.float32), sr, format="WAV")
    return buf.getvalue()
