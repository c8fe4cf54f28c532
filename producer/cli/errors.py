"""Every CLI failure is one line that says what to do; ``--debug`` (or ECHODIARY_DEBUG=1) shows the traceback.

Commands raise whatever they meet (a missing file, an API that is not running, a database that is
down, a refusal from the service); :func:`run_guarded` turns each into ``error: ...`` on stderr and
exit code 1, so a user never has to read a traceback to learn what to fix.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import typer
from typer.exceptions import TyperException

DEBUG_ENV = "ECHODIARY_DEBUG"
INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def enable_debug() -> None:
    os.environ[DEBUG_ENV] = "1"


def _validation(exc: Exception) -> str:
    problems = []
    for error in exc.errors():  # type: ignore[attr-defined]  # pydantic.ValidationError
        where = ".".join(str(part) for part in error.get("loc", ()))
        problems.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(problems)


def _connection(exc: Exception) -> str:
    from shared.settings import get_settings

    url = get_settings().api_url
    return (f"cannot reach the EchoDiary API at {url} ({exc.__class__.__name__}): start it with "
            "`echodiary serve`, or point ECHODIARY_API_URL at the running server")


def _service_down(exc: Exception, what: str, setting: str) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return f"cannot reach the {what} ({first}): is it running? Check {setting}"


def describe(exc: BaseException) -> str | None:
    """One line for a failure we know: what went wrong and what to do about it; else None."""
    import httpx
    import pydantic
    import redis
    import sqlalchemy.exc

    from producer.client import ApiError
    from shared.service import ServiceError

    if isinstance(exc, ApiError):
        return f"{exc.detail} (HTTP {exc.status})"
    if isinstance(exc, ServiceError):
        return exc.detail
    if isinstance(exc, httpx.TransportError):
        return _connection(exc)
    if isinstance(exc, pydantic.ValidationError):
        return _validation(exc)
    if isinstance(exc, redis.exceptions.ConnectionError):
        return _service_down(exc, "broker (Redis)", "ECHODIARY_BROKER_URL")
    if isinstance(exc, sqlalchemy.exc.OperationalError):
        return _service_down(exc.orig or exc, "database", "ECHODIARY_DATABASE_URL")
    if isinstance(exc, FileNotFoundError):
        return f"no such file or folder: {exc.filename}"
    if isinstance(exc, IsADirectoryError):
        return f"{exc.filename} is a folder; give a file"
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return None


def unexpected(exc: BaseException) -> str:
    """A failure we did not foresee: its kind and message, and where to find more."""
    text = " ".join(str(exc).split())
    kind = exc.__class__.__name__
    return f"{kind}: {text}  (run with --debug for the traceback)" if text else f"{kind} (run with --debug)"


def run_guarded(app: Callable[..., object], prog_name: str = "echodiary") -> None:
    """Run the typer app; an uncaught exception becomes one ``error:`` line and exit code 1."""
    try:
        outcome = app(prog_name=prog_name, standalone_mode=False)
    except SystemExit:
        raise
    except typer.Abort:  # Ctrl-C, or a declined confirmation
        typer.echo("stopped", err=True)
        sys.exit(INTERRUPTED)
    except TyperException as exc:  # bad usage: typer's own message and exit code
        show = getattr(exc, "show", None)
        show() if show else typer.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if debug_enabled():
            raise
        typer.echo(f"error: {describe(exc) or unexpected(exc)}", err=True)
        sys.exit(1)
    # Without standalone mode click hands back typer.Exit's code instead of exiting.
    sys.exit(outcome if isinstance(outcome, int) else 0)
