"""What the job and voice commands share: a client, its refusals as exit codes, progress, JSON.

With no broker configured the client runs everything in this process (embedded mode); with
``ECHODIARY_BROKER_URL`` and the rest set, it goes through the API and its workers.
Machine-readable output (ids, tokens, JSON) goes to stdout; progress bars and notes to stderr.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import typer

from shared.settings import get_settings

if TYPE_CHECKING:  # the client (httpx, the service layer) loads only when a command runs
    from pydantic import BaseModel

    from producer.client import Client, EmbeddedClient
    from shared.schemas import JobOut

P = ParamSpec("P")
R = TypeVar("R")


def err(message: str) -> None:
    typer.echo(message, err=True)


def connect_client() -> Client | EmbeddedClient:
    from producer.client import ApiError, connect

    try:
        return connect(get_settings())
    except ApiError as exc:
        err(f"error: {exc.detail}")
        raise typer.Exit(1) from exc


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` with the client's refusals turned into a message and exit code 1."""
    from producer.client import ApiError

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            err(f"error ({exc.status}): {exc.detail}")
            raise typer.Exit(1) from exc

    return run


def show_progress(client: Client | EmbeddedClient, job_id: str, timeout_s: float | None = None) -> JobOut:
    """Wait for a job, showing its progress on stderr (a bar on a terminal, plain lines elsewhere)."""
    from producer.cli.progress import job_progress

    with job_progress() as update:
        return client.wait(job_id, on_update=update, timeout_s=timeout_s)


def finish(client: Client | EmbeddedClient, job: JobOut, output: Path | None) -> None:
    if job.status != "succeeded":
        err(f"job {job.job_id} {job.status}" + (f": {job.error}" if job.error else ""))
        raise typer.Exit(1)
    if output is not None:
        path = client.download(job.job_id, output)
        err(f"saved {path}")


def print_json(model: BaseModel) -> None:
    typer.echo(json.dumps(model.model_dump(mode="json"), ensure_ascii=False, indent=2))
