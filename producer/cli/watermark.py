"""`echodiary watermark ...`: was a file made here, and for which job? Mark files, manage keys.

The keys live in the server's data folder (``ECHODIARY_DATA_DIR``), made on first use; every
active key is tried when detecting, so files marked before a key rotation are still found.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

watermark_app = typer.Typer(help="Find or add this server's audio watermark; manage its keys.",
                            no_args_is_help=True)


def report_file(path: Path, speed_search: bool = False) -> dict:
    """Detection result and AIGC label of one file, as the JSON the command prints."""
    from shared.settings import get_settings
    from worker import pipeline

    settings, data = get_settings(), path.read_bytes()
    found = pipeline.detect(settings, data, speed_search=speed_search).to_dict()
    label = pipeline.read_label(settings, data)
    found["label"] = label.fields if label else None
    found["label_verified"] = label.verified if label else None
    return {"file": str(path), **found}


@watermark_app.command("detect")
def detect_cmd(
    files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, help="Audio files to check."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per file, one per line."),
    speed_search: bool = typer.Option(False, "--speed-search",
                                      help="Also try playback speeds 0.95-1.05 (about 50 times slower)."),
) -> None:
    """Look for this server's watermark (and AIGC label) in each file."""
    failed = False
    for path in files:
        try:
            result = report_file(path, speed_search)
        except Exception as exc:  # one unreadable file must not hide the others' answers
            failed = True
            result = {"file": str(path), "error": f"cannot read this file as audio: {exc}"}
        if as_json:
            typer.echo(json.dumps(result))
        elif "error" in result:
            typer.echo(f"{path}: {result['error']}", err=True)
        else:
            typer.echo(_describe(result))
    if failed:
        raise typer.Exit(1)


def _describe(r: dict) -> str:
    if r["mac_ok"]:
        head = (f"marked by this server: payload {r['payload']} (key {r['key_id']}, z = {r['z']:.1f}, "
                f"false-positive probability <= {r['false_positive_bound']:.1e})")
    elif r["present"]:
        head = (f"marked by this server, payload unreadable (z = {r['z']:.1f} >= {r['z_threshold']:.1f}, "
                f"false-positive probability <= {r['false_positive_bound']:.1e})")
    else:
        head = f"no mark of this server found (z = {r['z']:.1f} < {r['z_threshold']:.1f})"
    if r["label"]:
        state = "verified" if r["label_verified"] else "NOT verified by our keys"
        head += f"; AIGC label ProduceID={r['label']['ProduceID']} ({state})"
    return f"{r['file']}: {head}"


@watermark_app.command("embed")
def embed_cmd(
    source: Path = typer.Argument(..., exists=True, dir_okay=False, help="Audio file to mark."),
    target: Path = typer.Argument(..., help="Output file; .wav, .flac, .ogg (Opus) or .mp3."),
    payload: str = typer.Option(..., "--payload", help="Up to 12 hex digits (48 bits), e.g. a job's mark."),
) -> None:
    """Mark an existing file with the server's primary key (levels are left as they are)."""
    from shared.schemas import FORMATS
    from shared.settings import get_settings
    from worker import watermark

    fmt = target.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        typer.echo(f"the output must end in one of {', '.join('.' + f for f in FORMATS)}", err=True)
        raise typer.Exit(2)
    try:
        value = watermark.parse_mark(payload)
    except ValueError:
        typer.echo(f"--payload must be at most 12 hex digits, not {payload!r}", err=True)
        raise typer.Exit(2) from None
    target.write_bytes(watermark.embed_mark(get_settings(), source.read_bytes(), fmt, value))
    typer.echo(f"{target}: marked with payload {value:012x}")


@watermark_app.command("keys")
def keys_cmd() -> None:
    """List the watermark keys (ids only; the secrets stay in the data folder)."""
    from shared.settings import get_settings
    from worker import watermark

    for key in watermark.list_keys(get_settings()):
        typer.echo(f"{key.id}  {key.role:8s} created {key.created}")


@watermark_app.command("rotate")
def rotate_cmd() -> None:
    """Make a new primary key; older keys stay active for detection."""
    from shared.settings import get_settings
    from worker import watermark

    typer.echo(f"new primary watermark key {watermark.rotate_key(get_settings())}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.add_typer(watermark_app, name="watermark")
