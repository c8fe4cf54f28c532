"""`echodiary say`: speak a line in one of your voices, playing (or writing) it as it renders; and
the streaming under `echodiary submit --follow`.

Where the audio goes: ``--out FILE`` writes it there piece by piece; otherwise, when stdout is a
file or a pipe, the bytes go to stdout; on a terminal it plays through ffplay (or aplay for WAV)
as it arrives, and without a player it is written to ``<job id>.<format>`` as it arrives.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import typer

from contracts import Format, TextLang
from producer.cli.calls import connect_client, err, guarded

PLAYERS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("ffplay", ("-nodisp", "-autoexit", "-loglevel", "error", "-i", "pipe:0"), ("wav", "flac", "ogg", "mp3")),
    ("aplay", ("-q", "-"), ("wav",)),
)


def stream_to(client, job_id: str, sink: BinaryIO,  # noqa: ANN001 - a Client or EmbeddedClient
              on_progress: Callable[[float], None] | None = None) -> int:
    """Write the job's audio to ``sink`` as each piece arrives; the bytes written."""
    written = 0
    for piece in client.stream_pieces(job_id):
        sink.write(piece.data)
        sink.flush()
        written += len(piece.data)
        if on_progress is not None:
            on_progress(piece.progress)
    return written


def follow(client, job_id: str, output: Path) -> None:  # noqa: ANN001
    """Stream a job into ``output`` while it renders, with a progress bar on stderr."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]streaming"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn())
    with Progress(*columns, transient=True, console=_stderr_console()) as bar, output.open("wb") as sink:
        task = bar.add_task(job_id, total=1.0)
        stream_to(client, job_id, sink, lambda done: bar.update(task, completed=done))
    err(f"saved {output}")


def _stderr_console():  # noqa: ANN202 - rich.console.Console
    from rich.console import Console

    return Console(stderr=True)


def _player(fmt: str) -> list[str] | None:
    for name, args, formats in PLAYERS:
        if fmt in formats and shutil.which(name):
            return [name, *args]
    return None


def _voice_id(client, voice: str) -> str:  # noqa: ANN001
    for v in client.voices():
        if voice in (v.voice_id, v.name):
            return v.voice_id
    names = ", ".join(v.name for v in client.voices()) or "none yet"
    err(f"error: no voice of yours is called {voice!r} (your voices: {names})")
    raise typer.Exit(1)


def say(text: str = typer.Argument(..., help="What to say"),
        voice: str = typer.Option(..., "--voice", "-v", help="Voice name or id (see `echodiary voices`)"),
        out: Path = typer.Option(None, "--out", "-o", help="Write the audio here as it arrives, instead of playing"),
        lang: TextLang = typer.Option("auto", "--lang", help="zh, all_zh, en or auto"),
        fmt: Format = typer.Option("wav", "--format", "-f", help="wav, flac, ogg or mp3")) -> None:
    """Say TEXT in one of your voices, playing it as it renders (the first words while the rest renders)."""
    client = connect_client()
    job_id = guarded(client.synthesize)(text, _voice_id(client, voice), text_lang=lang, format=fmt).job_id
    err(f"job {job_id}")
    if out is not None:
        with out.open("wb") as sink:
            guarded(stream_to)(client, job_id, sink)
        err(f"saved {out}")
        return
    if not sys.stdout.isatty():
        guarded(stream_to)(client, job_id, sys.stdout.buffer)
        return
    player = _player(fmt)
    if player is None:
        path = Path(f"{job_id}.{fmt}")
        err(f"no ffplay or aplay to play with: writing {path}")
        with path.open("wb") as sink:
            guarded(stream_to)(client, job_id, sink)
        return
    with subprocess.Popen(player, stdin=subprocess.PIPE) as playing:
        try:
            guarded(stream_to)(client, job_id, playing.stdin)
        finally:
            playing.stdin.close()


def register(app: typer.Typer) -> None:
    app.command()(say)
