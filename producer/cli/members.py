"""`echodiary members`: household members."""

from __future__ import annotations

import typer

from producer.cli.calls import err
from shared.settings import get_settings

members_app = typer.Typer(help="Household members.", no_args_is_help=True)


@members_app.command("add")
def members_add(name: str, admin: bool = typer.Option(False, "--admin", help="May create members")) -> None:
    """Create a member and print their API token (alone on stdout, shown this once)."""
    from shared import service

    try:
        _, token = service.create_member(service.open_backend(get_settings()), name, admin)
    except service.ServiceError as exc:
        err(f"error: {exc.detail}")
        raise typer.Exit(1) from exc
    typer.echo(token)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.add_typer(members_app, name="members")
