"""`echodiary voices`: list (default), add, show, rm."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from contracts import VoiceLang
from producer.cli.calls import connect_client, err, finish, guarded, print_json, show_progress
from shared.settings import get_settings

voices_app = typer.Typer(help="Your voices: list (default), add, show, rm.", invoke_without_command=True)


@voices_app.callback()
def voices_list(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Your voices."""
    if ctx.invoked_subcommand is not None:
        return
    voices = guarded(connect_client().voices)()
    if as_json:
        typer.echo(json.dumps([v.model_dump(mode="json") for v in voices], ensure_ascii=False, indent=2))
        return
    for v in voices:
        typer.echo(f"{v.voice_id}  {v.status:<9}  {v.language:<6}  {v.name}" + ("  (fine-tuned)" if v.finetuned else ""))


@voices_app.command("add")
def voices_add(audio: Path = typer.Argument(..., exists=True, dir_okay=False, help="3-10 s WAV/FLAC/OGG/MP3"),
               transcript: str = typer.Option(..., "--transcript", "-t", help="What the recording says"),
               language: VoiceLang = typer.Option("zh", "--language", "-l", help="zh, all_zh or en"),
               name: str = typer.Option(None, "--name", help="Default: the file name"),
               wait: bool = typer.Option(True, help="Wait for the enrollment to finish")) -> None:
    """Upload a reference recording; prints the new voice id."""
    client = connect_client()
    created = guarded(client.upload_voice)(audio, transcript, language, name or audio.stem)
    typer.echo(created.voice_id)
    if wait or get_settings().embedded:
        finish(client, guarded(show_progress)(client, created.job_id), None)


@voices_app.command("show")
def voices_show(voice_id: str) -> None:
    """One voice, as JSON."""
    print_json(guarded(connect_client().voice)(voice_id))


@voices_app.command("rm")
def voices_rm(voice_id: str, yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask")) -> None:
    """Delete a voice with every job, result and file made from it."""
    client = connect_client()
    request = guarded(client.request_delete_voice)(voice_id)
    if not yes and not typer.confirm(f"Delete voice {voice_id} and its {request.jobs} jobs for good?", err=True):
        raise typer.Exit(1)
    deleted = guarded(client.confirm_delete_voice)(voice_id, request.confirm)
    err(f"deleted voice {voice_id}: {deleted.jobs_deleted} jobs, {deleted.objects_deleted} files")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.add_typer(voices_app, name="voices")
