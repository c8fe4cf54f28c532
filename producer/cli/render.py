"""`echodiary render` and `echodiary demo`: render a diary as a synthesis job, like `submit` does.

In the embedded mode (no broker) the job runs in this process on the embedded executor, so no
servers are needed; the voice comes from an enrollment job and is reused for the same recording.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

import typer

from contracts import FORMATS, TextLang, VoiceLang
from shared.schemas import SynthesisRequest
from shared.settings import Settings


class RenderFailed(Exception):
    """The render's job did not succeed, or the service refused it; the message says why."""


def render_to_file(
    text: str,
    reference: Path | bytes,
    prompt_text: str,
    output: Path,
    *,
    settings: Settings,
    prompt_lang: str = "zh",
    params: dict | None = None,
    quiet: bool = False,
    on_job: Callable[[str], None] | None = None,
) -> dict:
    """Render ``text`` as a synthesis job (the road every job takes) and write its result to ``output``.

    The voice comes from an enrollment job the first time a reference is used, and is reused after
    that (with the chunks it has rendered). ``on_job`` hears the synthesis job's id once it is queued.
    """
    from rich.console import Console

    from producer.client import ApiError, connect

    console = Console(stderr=True, quiet=quiet)
    fmt = output.suffix.lstrip(".").lower() or "wav"
    if fmt not in FORMATS:
        raise typer.BadParameter(f"output format {fmt!r} is not supported; use {', '.join(FORMATS)}")
    if params and "format" in params:
        raise typer.BadParameter("the output format comes from the output file's suffix")
    # Refuse bad text or parameters now, not after the voice's enrollment has loaded the models.
    SynthesisRequest(text=text, voice_id="render", format=fmt, **(params or {}))
    if len(text) > settings.max_text_chars:
        raise RenderFailed(f"the diary has {len(text)} characters; the limit is {settings.max_text_chars} "
                           "(ECHODIARY_MAX_TEXT_CHARS)")
    started = time.perf_counter()
    data = reference if isinstance(reference, bytes) else reference.read_bytes()
    if settings.embedded:
        # The one-clip road without a consent recording: the person at this machine's console runs
        # the installation and vouches for the recording (the help says so); the output is still
        # watermarked and labelled. Through a server its own allow_legacy_voices setting decides.
        settings = settings.model_copy(update={"allow_legacy_voices": True})
    client = connect(settings)
    try:
        voice_id = _voice_for(client, console, data, prompt_text, prompt_lang, settings)
        accepted = client.synthesize(text, voice_id, format=fmt, **(params or {}))
        if on_job:
            on_job(accepted.job_id)
        job = _wait_with_bar(client, accepted.job_id, console)
        if job.status != "succeeded":
            raise RenderFailed(f"job {job.job_id} {job.status}" + (f": {job.error}" if job.error else ""))
        output.parent.mkdir(parents=True, exist_ok=True)
        client.download(job.job_id, output)
    except ApiError as exc:
        raise RenderFailed(exc.detail) from exc
    finally:
        client.close()
    summary = {"output": str(output), "job_id": job.job_id, "duration_s": job.result.duration_s if job.result else None,
               "chunks": job.progress.total, "wall_s": round(time.perf_counter() - started, 2)}  # fmt: skip
    console.print(f"wrote {output}: {summary['duration_s']} s of audio, {summary['chunks']} chunks in "
                  f"{summary['wall_s']} s (job {job.job_id})", soft_wrap=True)
    return summary


def _voice_for(client, console, reference: bytes, transcript: str, language: str,  # noqa: ANN001
               settings: Settings) -> str:
    """The member's ready voice made from this very reference, or a new one from an enrollment job."""
    digest = hashlib.sha256(b"\0".join([reference, transcript.encode(), language.encode(),
                                        str(settings.models_dir).encode()])).hexdigest()
    name = f"render-{digest[:16]}"
    ready = [v for v in client.voices() if v.name == name and v.status == "ready"]
    if ready:
        return ready[0].voice_id
    with console.status("enrolling the voice"):
        created = client.upload_voice(reference, transcript, language, name)
        job = client.wait(created.job_id)
    if job.status != "succeeded":
        raise RenderFailed(f"enrolling the voice failed (job {job.job_id} {job.status})"
                           + (f": {job.error}" if job.error else ""))
    return created.voice_id


def _wait_with_bar(client, job_id: str, console):  # noqa: ANN001, ANN202 - JobOut
    """Wait for the job, its progress counting the chunks the job's progress records."""
    from producer.cli.progress import job_progress

    with job_progress(console) as update:
        return client.wait(job_id, on_update=update)


def register(app: typer.Typer) -> None:
    @app.command()
    def render(
        diary: Path = typer.Argument(..., help="The diary text file (UTF-8), or - for standard input."),
        voice: Path = typer.Option(..., "--voice", help="A 3-10 s recording of YOUR OWN voice (wav, flac, ogg, "
                                   "mp3); only enroll a voice you have the right to use."),
        prompt_text: str = typer.Option(..., "--prompt-text", help="Exactly what the recording says."),
        output: Path = typer.Option(Path("diary.flac"), "-o", "--output", help="Output file: .wav .flac .ogg .mp3"),
        prompt_lang: VoiceLang = typer.Option("zh", help="Language of the recording: zh or en."),
        text_lang: TextLang = typer.Option("zh", help="Language of the diary: zh, all_zh, en or auto."),
        seed: int = typer.Option(-1, help="Same seed, same audio; -1 picks one."),
        batch_size: int = typer.Option(8, help="Chunks decoded together."),
        top_k: int = typer.Option(15),
        speed_factor: float = typer.Option(1.0, help="Speaking rate (0.5-2.0)."),
    ) -> None:
        """Render a diary entry in your voice: a job like `submit`, run in this process in the embedded mode.

        Prints the job id on stdout; the progress bar and the summary go to stderr.
        """
        from pydantic import ValidationError

        from shared.settings import get_settings

        params = {"text_lang": text_lang, "seed": seed, "batch_size": batch_size, "top_k": top_k,
                  "speed_factor": speed_factor}  # fmt: skip
        try:
            text = sys.stdin.read() if str(diary) == "-" else _read_text(diary)
            render_to_file(text, voice, prompt_text, output, settings=get_settings(), prompt_lang=prompt_lang,
                           params=params, on_job=typer.echo)  # fmt: skip
        except (RenderFailed, FileNotFoundError, ValueError) as exc:
            typer.echo(f"error: {_problem(exc) if isinstance(exc, ValidationError) else exc}", err=True)
            raise typer.Exit(1) from exc

    @app.command()
    def demo(
        output: Path = typer.Option(None, "-o", "--output", help="Where to write the demo (default: data/demo.flac)."),
    ) -> None:
        """Render a short diary with a synthetic voice; uses ./models when complete, else tiny random models."""
        from shared.settings import get_settings
        from worker.models_admin import init_random_models, models_version

        settings = get_settings()
        models_dir = settings.models_dir
        if not models_dir.is_dir() or models_version(models_dir) is None:
            models_dir = settings.data_dir / "demo-models"
            if models_version(models_dir) is None:
                typer.echo(f"No GPT-SoVITS weights in {settings.models_dir} (see README, 'Models'); writing tiny "
                           f"random models to {models_dir} to show the pipeline. They speak noise.", err=True)
                init_random_models(models_dir, "tiny", "v2", 0)
        reference = _demo_reference()
        text = ("2025年3月5日，星期三，晴。早上七点半起床，跑了3.5公里。中午和朋友吃了一碗牛肉面，花了25元。"
                "下午读了一会儿书，晚上给妈妈打了电话。今天很开心！")  # fmt: skip
        out = output or settings.data_dir / "demo.flac"
        summary = render_to_file(text, reference, "今天天气很好，我们去公园散步。", out,
                                 settings=settings.model_copy(update={"models_dir": models_dir}),
                                 params={"seed": 42})  # fmt: skip
        typer.echo(str(summary["output"]))


def _problem(exc) -> str:  # noqa: ANN001 - pydantic.ValidationError
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


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
