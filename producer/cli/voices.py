"""`echodiary voices`: list (default), add, show, rm, and `voices style add|list|rm|default`."""

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


style_app = typer.Typer(help="A voice's styles (personas): add, list, rm, default.", no_args_is_help=True)
voices_app.add_typer(style_app, name="style")


def _styles():  # noqa: ANN202 - the enrollment client (styles live beside guided enrollment)
    from producer.enrollment_client import enrollment_for

    return enrollment_for(connect_client())


def _print_styles(styles) -> None:  # noqa: ANN001 - list[StyleOut]
    for s in styles:
        mark = "*" if s.default else " "
        score = f"  similarity {s.score:.2f} >= {s.threshold:.2f}" if s.score is not None else ""
        typer.echo(f"{mark} {s.name}\t{s.status}{score}" + (f"\t{s.transcript}" if s.transcript else ""))


@style_app.command("add")
def style_add(voice_id: str, name: str = typer.Argument(..., help="The style's name, e.g. 温柔"),
              audio: Path = typer.Argument(..., exists=True, dir_okay=False, help="3-10 s read in that style"),
              transcript: str = typer.Option(..., "--transcript", "-t", help="What the recording says")) -> None:
    """Add a style, checked against the voice's enrolled speaker (exits 1 with the reason when refused)."""
    style = guarded(_styles().add_style)(voice_id, name, audio, transcript)
    typer.echo(style.name)
    if style.score is not None:
        err(f"style {style.name} {style.status}: same speaker (similarity {style.score:.2f} >= {style.threshold:.2f}, "
            f"{style.model})")
    else:
        err(f"style {style.name} {style.status}")


@style_app.command("list")
def style_list(voice_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """The voice's styles; * marks the default."""
    styles = guarded(_styles().styles)(voice_id)
    if as_json:
        typer.echo(json.dumps([s.model_dump(mode="json") for s in styles], ensure_ascii=False, indent=2))
        return
    _print_styles(styles)


@style_app.command("rm")
def style_rm(voice_id: str, name: str) -> None:
    """Delete a style with its recording and profile."""
    deleted = guarded(_styles().delete_style)(voice_id, name)
    err(f"deleted style {name} of voice {voice_id}: {deleted.objects_deleted} files")


@style_app.command("default")
def style_default(voice_id: str, name: str = typer.Argument(..., help="A style, or 'enrollment'")) -> None:
    """Make a style the one syntheses read in when they name none."""
    _print_styles(guarded(_styles().set_default_style)(voice_id, name))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.add_typer(voices_app, name="voices")
