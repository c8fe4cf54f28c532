"""`echodiary backup DIR` and `echodiary restore DIR`: a consistent snapshot and its restore.

They work on the installation the settings describe (embedded: SQLite + the storage folder; server:
PostgreSQL + S3), directly, not through the API: run them where the settings and the data folder are.
"""

from __future__ import annotations

from pathlib import Path

import typer

from shared.settings import get_settings


def backup_cmd(folder: Path = typer.Argument(..., help="A new (or empty) folder for this backup")) -> None:
    """Write a consistent snapshot: database, stored audio and voices, watermark keyring, settings
    (secrets left out). Safe while the server runs; schedule it with cron or a systemd timer."""
    from shared.backup import BackupError, backup

    try:
        summary = backup(get_settings(), folder)
    except BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    rows = ", ".join(f"{n} {t}" for t, n in summary.rows.items())
    typer.echo(f"backup written to {summary.folder}: {rows}; {summary.objects} objects "
               f"({summary.object_bytes} bytes)", err=True)
    if summary.missing:
        typer.echo(f"note: {len(summary.missing)} objects were deleted while the backup ran (expired or "
                   "deleted); their rows are kept, without the object", err=True)
    typer.echo(str(summary.folder))


def restore_cmd(folder: Path = typer.Argument(..., exists=True, file_okay=False,
                                              help="A folder `echodiary backup` wrote")) -> None:
    """Restore a backup onto a fresh installation (empty database, new data folder): the same
    members, tokens, voices, jobs, audio and watermark keyring. Stop the API and workers first."""
    from shared.backup import BackupError, restore

    try:
        summary = restore(get_settings(), folder)
    except BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    rows = ", ".join(f"{n} {t}" for t, n in summary.rows.items())
    typer.echo(f"restored from {folder}: {rows}; {summary.objects} objects", err=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("backup")(backup_cmd)
    app.command("restore")(restore_cmd)
