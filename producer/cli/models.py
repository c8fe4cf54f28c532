"""`echodiary models ...`: set up, inspect and fetch the GPT-SoVITS models folder."""

from __future__ import annotations

from pathlib import Path

import typer

models_app = typer.Typer(help="The GPT-SoVITS models folder (upstream's pretrained_models layout).",
                         no_args_is_help=True)


@models_app.command("init")
def init(
    folder: Path = typer.Argument(..., help="Folder to write the models into."),
    random: bool = typer.Option(False, "--random", help="Write seeded random weights (they speak noise)."),
    size: str = typer.Option("tiny", help="tiny (tests, demos) or full (benchmarks; official sizes)."),
    version: str = typer.Option("v2", help="v2, v2Pro or v2ProPlus."),
    seed: int = typer.Option(0, help="Random seed; the same seed writes the same files."),
) -> None:
    """Write a complete models folder in upstream's layout and file formats."""
    from worker.models_admin import init_random_models

    if not random:
        typer.echo("Only random models can be initialised here: pass --random, or use "
                   "`echodiary models download` for the official files.", err=True)
        raise typer.Exit(2)
    if size not in ("tiny", "full"):
        typer.echo(f"--size must be tiny or full, not {size!r}", err=True)
        raise typer.Exit(2)
    try:
        written = init_random_models(folder, size, version, seed)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for path in written:
        typer.echo(str(path))
    typer.echo(f"random {size} {version} models written to {folder} (seed {seed})", err=True)


@models_app.command("check")
def check(folder: Path = typer.Argument(..., help="The models folder to inspect.")) -> None:
    """Report what a models folder holds; exit 1 if anything needed is missing or unusable."""
    from rich.console import Console
    from rich.table import Table

    from shared.settings import get_settings
    from worker.models_admin import check_models, models_version

    console = Console()
    if not folder.is_dir():
        console.print(f"[red]{folder} is not a folder.[/red] Put the official GPT-SoVITS files there "
                      "(see README, 'Models') or run `echodiary models download`.")
        raise typer.Exit(1)
    reports = check_models(folder, g2pw_dir=get_settings().g2pw_dir)
    table = Table("file", "kind", "status", "detail")
    for report in reports:
        status = "[green]ok[/green]" if report.ok else "[red]problem[/red]"
        table.add_row(report.path, report.kind, status, report.detail)
    console.print(table)
    version = models_version(folder)
    bad = [r for r in reports if not r.ok]
    if version is None or bad:
        console.print("[red]This folder cannot be used yet.[/red] Fix the rows marked 'problem' above.")
        raise typer.Exit(1)
    console.print(f"[green]Complete for GPT-SoVITS {version}.[/green]")


@models_app.command("download")
def download(
    folder: Path = typer.Argument(..., help="Where to put the official files."),
    version: str = typer.Option("v2", help="v2, v2Pro or v2ProPlus."),
) -> None:
    """Fetch the official pretrained files from the Hugging Face hub (needs a server that is online)."""
    from worker.models_admin import ModelsUnavailable, download_models

    try:
        for path in download_models(folder, version):
            typer.echo(str(path))
    except ModelsUnavailable as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"GPT-SoVITS {version} files are in {folder}", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
