"""`echodiary members`: household members."""

from __future__ import annotations

import typer

from producer.cli.calls import err
from shared.settings import get_settings

members_app = typer.Typer(help="Household members.", no_args_is_help=True)


@members_app.command("add")
def members_add(name: str, admin: bool = typer.Option(False, "--admin", help="May create members")) -> None:
    """Create a member and print their API token (alone on stdout, shown this once)."""
    from shared import service, web_sessions

    backend = service.open_backend(get_settings())
    try:
        member, token = service.create_member(backend, name, admin)
    except service.ServiceError as exc:
        err(f"error: {exc.detail}")
        raise typer.Exit(1) from exc
    typer.echo(token)
    err(f"browser invite (one use, 7 days): {web_sessions.invite_link(backend, web_sessions.create_invite(backend, member.id))}")


@members_app.command("invite")
def members_invite(name: str) -> None:
    """Print a new one-time browser invite link for a member (valid 7 days, used once)."""
    from sqlalchemy import select

    from shared import service, web_sessions
    from shared.tables import Member

    backend = service.open_backend(get_settings())
    with backend.db.read() as session:
        member = session.exec(select(Member).where(Member.name == name.strip())).scalars().first()
    if member is None:
        err(f"error: no member named {name!r}")
        raise typer.Exit(1)
    typer.echo(web_sessions.invite_link(backend, web_sessions.create_invite(backend, member.id)))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.add_typer(members_app, name="members")
