"""`echodiary` commands: the servers (serve, worker, flower), members, voices and jobs.

With no broker configured everything runs in this process (embedded mode); with
``ECHODIARY_BROKER_URL`` and the rest set, the job commands go through the API and its workers.
Machine-readable output (ids, tokens, JSON) goes to stdout; progress bars and notes to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from shared.settings import get_settings

members_app = typer.Typer(help="Household members.", no_args_is_help=True)
voices_app = typer.Typer(help="Your voices: list (default), add, show, rm.", invoke_without_command=True)


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _client():  # noqa: ANN202 - producer.client.Client | EmbeddedClient
    from producer.client import ApiError, connect

    try:
        return connect(get_settings())
    except ApiError as exc:
        _err(f"error: {exc.detail}")
        raise typer.Exit(1) from exc


def _guarded(fn):  # noqa: ANN001, ANN202 - turns client errors into a message and exit code 1
    from producer.client import ApiError

    def run(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            _err(f"error ({exc.status}): {exc.detail}")
            raise typer.Exit(1) from exc

    return run


def _show_progress(client, job_id: str, timeout_s: float | None = None):  # noqa: ANN001, ANN202
    """Wait for a job with a progress bar on stderr (chunks done/total, elapsed, ETA)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(f"{job_id[:8]} queued", total=None)

        def update(job) -> None:  # noqa: ANN001
            where = f" (position {job.queue_position})" if job.queue_position is not None else ""
            bar.update(task, description=f"{job_id[:8]} {job.kind} {job.status}{where}",
                       completed=job.progress.done, total=job.progress.total or None)

        return client.wait(job_id, on_update=update, timeout_s=timeout_s)


def _finish(client, job, output: Path | None) -> None:  # noqa: ANN001
    if job.status != "succeeded":
        _err(f"job {job.job_id} {job.status}" + (f": {job.error}" if job.error else ""))
        raise typer.Exit(1)
    if output is not None:
        path = client.download(job.job_id, output)
        _err(f"saved {path}")


def _print_json(model) -> None:  # noqa: ANN001
    typer.echo(json.dumps(model.model_dump(mode="json"), ensure_ascii=False, indent=2))


# --- servers -----------------------------------------------------------------------------------

def serve(host: str = typer.Option(None, help="Address to bind (default: ECHODIARY_HOST, 127.0.0.1)"),
          port: int = typer.Option(None, help="Port (default: ECHODIARY_PORT, 8000)")) -> None:
    """Run the HTTP API (embedded mode: jobs run inside it; server mode: on the Celery workers)."""
    import uvicorn

    from producer.api import create_app

    settings = get_settings()
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port,
                log_level="info")


def worker(queues: str = typer.Option("gpu,cpu", help="Queues to consume: gpu (model work), cpu (light work)"),
           concurrency: int = typer.Option(1, help="Processes; keep 1 per GPU"),
           name: str = typer.Option(None, help="Worker name (default: celery@<host>)"),
           loglevel: str = typer.Option("INFO")) -> None:
    """Run a Celery worker. Models load in the worker's child process on its first job."""
    settings = get_settings()
    if settings.embedded:
        _err("no broker configured (ECHODIARY_BROKER_URL): in the embedded mode jobs run in the "
             "echodiary process itself and no worker is needed")
        raise typer.Exit(2)
    from worker.app import app

    argv = ["worker", "-Q", queues, "--concurrency", str(concurrency), "--pool", "prefork",
            "--loglevel", loglevel]
    if name:
        argv += ["-n", name]
    app.worker_main(argv)


def flower(address: str = typer.Option(None), port: int = typer.Option(None)) -> None:
    """Run Flower, the Celery dashboard (bound to localhost, basic auth from ECHODIARY_FLOWER_BASIC_AUTH)."""
    settings = get_settings()
    if settings.embedded:
        _err("no broker configured (ECHODIARY_BROKER_URL): there are no workers to show")
        raise typer.Exit(2)
    import ops
    from worker.app import app

    argv = ["flower", f"--address={address or settings.flower_address}", f"--port={port or settings.flower_port}",
            f"--conf={Path(ops.__file__).parent / 'flowerconfig.py'}"]
    if settings.flower_basic_auth:
        argv.append(f"--basic-auth={settings.flower_basic_auth}")
    elif (address or settings.flower_address) not in ("127.0.0.1", "localhost", "::1"):
        _err("refusing to serve Flower beyond localhost without ECHODIARY_FLOWER_BASIC_AUTH")
        raise typer.Exit(2)
    app.start(argv)


# --- members -----------------------------------------------------------------------------------

@members_app.command("add")
def members_add(name: str, admin: bool = typer.Option(False, "--admin", help="May create members")) -> None:
    """Create a member and print their API token (alone on stdout, shown this once)."""
    from shared import service

    try:
        _, token = service.create_member(service.open_backend(get_settings()), name, admin)
    except service.ServiceError as exc:
        _err(f"error: {exc.detail}")
        raise typer.Exit(1) from exc
    typer.echo(token)


# --- voices ------------------------------------------------------------------------------------

@voices_app.callback()
def voices_list(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Your voices."""
    if ctx.invoked_subcommand is not None:
        return
    voices = _guarded(_client().voices)()
    if as_json:
        typer.echo(json.dumps([v.model_dump(mode="json") for v in voices], ensure_ascii=False, indent=2))
        return
    for v in voices:
        typer.echo(f"{v.voice_id}  {v.status:<9}  {v.language:<6}  {v.name}" + ("  (fine-tuned)" if v.finetuned else ""))


@voices_app.command("add")
def voices_add(audio: Path = typer.Argument(..., exists=True, dir_okay=False, help="3-10 s WAV/FLAC/OGG/MP3"),
               transcript: str = typer.Option(..., "--transcript", "-t", help="What the recording says"),
               language: str = typer.Option("zh", "--language", "-l", help="zh, all_zh or en"),
               name: str = typer.Option(None, "--name", help="Default: the file name"),
               wait: bool = typer.Option(True, help="Wait for the enrollment to finish")) -> None:
    """Upload a reference recording; prints the new voice id."""
    client = _client()
    created = _guarded(client.upload_voice)(audio, transcript, language, name or audio.stem)
    typer.echo(created.voice_id)
    if wait or get_settings().embedded:
        _finish(client, _guarded(_show_progress)(client, created.job_id), None)


@voices_app.command("show")
def voices_show(voice_id: str) -> None:
    """One voice, as JSON."""
    _print_json(_guarded(_client().voice)(voice_id))


@voices_app.command("rm")
def voices_rm(voice_id: str, yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask")) -> None:
    """Delete a voice with every job, result and file made from it."""
    client = _client()
    request = _guarded(client.request_delete_voice)(voice_id)
    if not yes and not typer.confirm(f"Delete voice {voice_id} and its {request.jobs} jobs for good?", err=True):
        raise typer.Exit(1)
    deleted = _guarded(client.confirm_delete_voice)(voice_id, request.confirm)
    _err(f"deleted voice {voice_id}: {deleted.jobs_deleted} jobs, {deleted.objects_deleted} files")


# --- jobs --------------------------------------------------------------------------------------

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
           lang: str = typer.Option("zh", "--lang", help="zh, all_zh, en or auto"),
           fmt: str = typer.Option("wav", "--format", "-f", help="wav, flac, ogg or mp3"),
           param: list[str] = typer.Option([], "--param", "-p", help="Synthesis parameter NAME=VALUE (top_k, seed, ...)"),
           idempotency_key: str = typer.Option(None, "--idempotency-key", help="Same key again: same job"),
           wait: bool = typer.Option(False, "--wait", "-w", help="Wait with a progress bar"),
           output: Path = typer.Option(None, "--output", "-o", help="Save the audio here when done (implies --wait)")) -> None:
    """Queue a diary entry for synthesis; prints the job id."""
    from pydantic import ValidationError

    if text is None:
        if source is None:
            raise typer.BadParameter("give a text file, - for stdin, or --text")
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    client = _client()
    try:
        accepted = _guarded(client.synthesize)(text, voice, idempotency_key=idempotency_key, text_lang=lang,
                                               format=fmt, **_parse_params(param))
    except ValidationError as exc:
        _err(f"error: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
        raise typer.Exit(2) from exc
    typer.echo(accepted.job_id)
    if wait or output is not None or get_settings().embedded:
        _finish(client, _guarded(_show_progress)(client, accepted.job_id), output)


def status(job_id: str) -> None:
    """A job's state as JSON (status, progress, queue position, error, download link)."""
    _print_json(_guarded(_client().job)(job_id))


def wait_cmd(job_id: str, output: Path = typer.Option(None, "--output", "-o", help="Save the audio here"),
             timeout: float = typer.Option(None, help="Give up after this many seconds")) -> None:
    """Wait for a job with a progress bar; exit status 0 only if it succeeded."""
    client = _client()
    try:
        job = _guarded(_show_progress)(client, job_id, timeout)
    except TimeoutError as exc:
        _err(str(exc))
        raise typer.Exit(3) from exc
    _finish(client, job, output)


def download(job_id: str, output: Path = typer.Option(None, "--output", "-o", help="Default: <job id>.<format>")) -> None:
    """Save a finished job's audio."""
    path = _guarded(_client().download)(job_id, output)
    typer.echo(str(path))


def jobs_list(limit: int = typer.Option(20, min=1, max=100), offset: int = typer.Option(0, min=0),
              job_status: str = typer.Option(None, "--status"), kind: str = typer.Option(None),
              as_json: bool = typer.Option(False, "--json")) -> None:
    """Your jobs, newest first."""
    page = _guarded(_client().jobs)(limit, offset, job_status, kind)
    if as_json:
        _print_json(page)
        return
    for job in page.items:
        progress = f"{job.progress.done}/{job.progress.total}" if job.progress.total else "-"
        typer.echo(f"{job.job_id}  {job.kind:<9}  {job.status:<9}  {progress:>7}  {job.created_at:%Y-%m-%d %H:%M}")
    if page.next_offset is not None:
        _err(f"... {page.total - page.next_offset} more (--offset {page.next_offset})")


def cancel(job_id: str) -> None:
    """Cancel a job (a running one stops after its current chunk)."""
    job = _guarded(_client().cancel)(job_id)
    _err(f"job {job_id}: {job.status}" + (" (stopping after the current chunk)" if job.status == "running" else ""))


def retry(job_id: str, wait: bool = typer.Option(False, "--wait", "-w", help="Wait with a progress bar")) -> None:
    """Try a failed or cancelled job again, as a new attempt; prints the job id."""
    client = _client()
    job = _guarded(client.retry)(job_id)
    typer.echo(job.job_id)
    if wait or get_settings().embedded:
        _finish(client, _guarded(_show_progress)(client, job.job_id), None)


def finetune(voice_id: str, sovits_epochs: int = typer.Option(8), gpt_epochs: int = typer.Option(15),
             wait: bool = typer.Option(False, "--wait", "-w")) -> None:
    """Fine-tune the models on one of your voices (a long background job); prints the job id.

    Once it succeeds, syntheses in that voice use its fine-tuned weights.
    """
    client = _client()
    accepted = _guarded(client.finetune)(voice_id, sovits_epochs=sovits_epochs, gpt_epochs=gpt_epochs)
    typer.echo(accepted.job_id)
    if wait or get_settings().embedded:
        _finish(client, _guarded(_show_progress)(client, accepted.job_id), None)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command()(serve)
    app.command()(worker)
    app.command()(flower)
    app.add_typer(members_app, name="members")
    app.add_typer(voices_app, name="voices")
    app.command()(submit)
    app.command()(status)
    app.command("wait")(wait_cmd)
    app.command()(download)
    app.command("jobs")(jobs_list)
    app.command()(cancel)
    app.command()(retry)
    app.command()(finetune)
