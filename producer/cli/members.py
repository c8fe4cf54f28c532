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
    from shared import members, service, web_sessions

    backend = service.open_backend(get_settings())
    member = members.find_member(backend, name)
    typer.echo(web_sessions.invite_link(backend, web_sessions.create_invite(backend, member.id)))


@members_app.command("list")
def members_list(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List the household's members with their voices, jobs, storage and sign-ins."""
    import dataclasses
    import json

    from shared import members, service

    rows = members.list_members(service.open_backend(get_settings()))
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(row) for row in rows], ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "id", "admin", "voices", "jobs", "storage", "tokens", "browsers")
    for row in rows:
        table.add_row(row.name, row.member_id, "yes" if row.admin else "", str(row.voices), str(row.jobs),
                      f"{row.storage_bytes / 1e6:.1f} MB", str(row.active_tokens), str(row.web_sessions))
    Console().print(table)


@members_app.command("revoke")
def members_revoke(name: str = typer.Argument(..., help="The member's name or id."),
                   new_token: bool = typer.Option(True, "--new-token/--no-new-token",
                                                  help="Print a fresh token for the member.")) -> None:
    """Revoke a member's tokens, sign out their browsers and cancel their invites (a lost phone, a leaked token)."""
    from shared import members, service

    backend = service.open_backend(get_settings())
    member = members.find_member(backend, name)
    token = members.revoke_access(backend, member.id, new_token=new_token)
    err(f"revoked every token and browser sign-in of {member.name}")
    if token:
        typer.echo(token)


@members_app.command("rm")
def members_rm(name: str = typer.Argument(..., help="The member's name or id."),
               yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation.")) -> None:
    """Remove a member with ALL their voices, recordings, diary entries, jobs and audio. Cannot be undone."""
    from shared import members, service

    backend = service.open_backend(get_settings())
    member = members.find_member(backend, name)
    if not yes:
        typer.confirm(f"Remove {member.name} and everything they recorded and wrote? This cannot be undone",
                      abort=True)
    removed = members.remove_member(backend, member.id)
    err(f"removed {member.name}: {removed.rows} database rows and {removed.objects} stored objects")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.add_typer(members_app, name="members")
