"""The ``echodiary`` command line.

Each group of commands lives in its own module with a ``register(app)`` function, so the jobs,
models, rendering and watermark commands stay apart. Heavy imports (torch, the engine) happen
inside the commands, never at start-up: ``echodiary --help`` stays instant.
"""

from __future__ import annotations

import typer

from producer.cli import (
    backup,
    enroll,
    errors,
    jobs,
    listen,
    members,
    models,
    render,
    server,
    voices,
    watermark,
)

app = typer.Typer(
    name="echodiary",
    help="EchoDiary: your diary, read back in your own voice. Self-hosted GPT-SoVITS.",
    no_args_is_help=True,
    add_completion=False,
)



@app.callback()
def options(debug: bool = typer.Option(False, "--debug", help="Show the full traceback when a command fails.")) -> None:
    """EchoDiary: your diary, read back in your own voice. Self-hosted GPT-SoVITS."""
    if debug:
        errors.enable_debug()


for module in (models, render, server, members, voices, jobs, watermark, backup, enroll, listen):
    module.register(app)


@app.command()
def version() -> None:
    """Print EchoDiary's version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("echodiary"))


def main() -> None:
    """The ``echodiary`` entry point: the app, with every failure as one line (see :mod:`producer.cli.errors`)."""
    errors.run_guarded(app)
