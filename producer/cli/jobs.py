"""`echodiary` job commands: submit, status, wait, download, jobs, cancel, finetune.

See :mod:`producer.cli.calls` for the embedded and server modes and what goes to stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from contracts import Format, JobKind, JobStatus, TextLang
from producer.cli.calls import connect_client, err, finish, guarded, print_json, show_progress
from shared.settings import get_settings


def _parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise typer.BadParameter(f"{pair!r} is not NAME=VALUE")
        key, value = pair.split("=", 1)
        params[key.strip()] = value.strip()
    return params


def submit(source: str = typer.Argument(None, help="A text file, or - for stdin"),
           text: str = typer.Option(None, "--text", help="The entry itself, instead of a file"),
           voice: str = typer.Option(..., "--voice", "-v", help="Voice id (see `echodiary voices`)"),
           lang: TextLang = typer.Option("zh", "--lang", help="zh, all_zh, en or auto"),
           fmt: Format = typer.Option("wav", "--format", "-f", help="wav, flac, ogg or mp3"),
           param: list[str] = typer.Option([], "--param", "-p", help="Synthesis parameter NAME=VALUE (top_k, seed, ...)"),
           style: str = typer.Option(None, "--style", help="A style of the voice (`echodiary voices style list`)"),
           idempotency_key: str = typer.Option(None, "--idempotency-key", help="Same key again: same job"),
           wait: bool = typer.Option(False, "--wait", "-w", help="Wait with a progress bar"),
           follow: bool = typer.Option(False, "--follow", help="Stream the audio into --output (default "
                                       "<job id>.<format>) while it renders"),
           output: Path = typer.Option(None, "--output", "-o", help="Save the audio here when done (implies --wait)")) -> None:
    """Queue a diary entry for synthesis; prints the job id."""
    from pydantic import ValidationError

    if text is None:
        if source is None:
            raise typer.BadParameter("give a text file, - for stdin, or --text")
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    params = _parse_params(param) | ({"style": style} if style is not None else {})
    client = connect_client()
    try:
        accepted = guarded(client.synthesize)(text, voice, idempotency_key=idempotency_key, text_lang=lang,
                                               format=fmt, **params)
    except ValidationError as exc:
        err(f"error: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
        raise typer.Exit(2) from exc
    typer.echo(accepted.job_id)
    if follow:
        from producer.cli.listen import follow as follow_job

        guarded(follow_job)(client, accepted.job_id, output or Path(f"{accepted.job_id}.{fmt}"))
        return
    if wait or output is not None or get_settings().embedded:
        finish(client, guarded(show_progress)(client, accepted.job_id), output)


def status(job_id: str) -> None:
    """A job's state as JSON (status, progress, queue position, error, download link)."""
    print_json(guarded(connect_client().job)(job_id))


def wait_cmd(job_id: str, output: Path = typer.Option(None, "--output", "-o", help="Save the audio here"),
             timeout: float = typer.Option(None, help="Give up after this many seconds")) -> None:
    """Wait for a job with a progress bar; exit status 0 only if it succeeded."""
    client = connect_client()
    try:
        job = guarded(show_progress)(client, job_id, timeout)
    except TimeoutError as exc:
        err(str(exc))
        raise typer.Exit(3) from exc
    finish(client, job, output)


def download(job_id: str, output: Path = typer.Option(None, "--output", "-o", help="Default: <job id>.<format>")) -> None:
    """Save a finished job's audio."""
    path = guarded(connect_client().download)(job_id, output)
    typer.echo(str(path))


def jobs_list(limit: int = typer.Option(20, min=1, max=100), offset: int = typer.Option(0, min=0),
              job_status: JobStatus | None = typer.Option(None, "--status"), kind: JobKind | None = typer.Option(None),
              as_json: bool = typer.Option(False, "--json")) -> None:
    """Your jobs, newest first."""
    page = guarded(connect_client().jobs)(limit, offset, job_status, kind)
    if as_json:
        print_json(page)
        return
    for job in page.items:
        progress = f"{job.progress.done}/{job.progress.total}" if job.progress.total else "-"
        typer.echo(f"{job.job_id}  {job.kind:<9}  {job.status:<9}  {progress:>7}  {job.created_at:%Y-%m-%d %H:%M}")
    if page.next_offset is not None:
        err(f"... {page.total - page.next_offset} more (--offset {page.next_offset})")


def cancel(job_id: str) -> None:
    """Cancel a job (a running one stops after its current chunk)."""
    job = guarded(connect_client().cancel)(job_id)
    err(f"job {job_id}: {job.status}" + (" (stopping after the current chunk)" if job.status == "running" else ""))


def retry(job_id: str, wait: bool = typer.Option(False, "--wait", "-w", help="Wait with a progress bar")) -> None:
    """Try a failed or cancelled job again, as a new attempt; prints the job id."""
    client = connect_client()
    job = guarded(client.retry)(job_id)
    typer.echo(job.job_id)
    if wait or get_settings().embedded:
        finish(client, guarded(show_progress)(client, job.job_id), None)


def finetune(voice_id: str, sovits_epochs: int = typer.Option(8), gpt_epochs: int = typer.Option(15),
             wait: bool = typer.Option(False, "--wait", "-w")) -> None:
    """Fine-tune the models on one of your voices (a long background job); prints the job id.

    Once it succeeds, syntheses in that voice use its fine-tuned weights.
    """
    client = connect_client()
    accepted = guarded(client.finetune)(voice_id, sovits_epochs=sovits_epochs, gpt_epochs=gpt_epochs)
    typer.echo(accepted.job_id)
    if wait or get_settings().embedded:
        finish(client, guarded(show_progress)(client, accepted.job_id), None)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command()(submit)
    app.command()(status)
    app.command("wait")(wait_cmd)
    app.command()(download)
    app.command("jobs")(jobs_list)
    app.command()(cancel)
    app.command()(retry)
    app.command()(finetune)
