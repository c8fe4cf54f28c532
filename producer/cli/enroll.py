"""`echodiary enroll`: a voice from one guided minute (reading script, takes, consent, finish).

    echodiary enroll scripts [ID]            the script ids, or one script's sentences
    echodiary enroll consent-text            the statement to read aloud
    echodiary enroll start --script ID --name NAME
    echodiary enroll start --script ID --voice VOICE   more samples for a ready voice
    echodiary enroll take SESSION N FILE     sentence N (from 1), or `all` for the whole script
    echodiary enroll consent SESSION FILE
    echodiary enroll finish SESSION
    echodiary enroll status SESSION
    echodiary enroll FILE --script ID --consent CONSENT.wav --name NAME   (all of it in one go)

Ids and texts go to stdout; notes, gate messages and progress to stderr. A refused take exits 1
with the gate's message.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.core import TyperGroup

ONE_SHOT = "file"


class _EnrollGroup(TyperGroup):
    """`echodiary enroll FILE ...` (not a subcommand name) runs the one-shot command."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:  # noqa: ANN001 - click.Context
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = [ONE_SHOT, *args]
        return super().parse_args(ctx, args)


enroll_app = typer.Typer(cls=_EnrollGroup, no_args_is_help=True,
                         help="Enroll your voice from one guided minute: scripts, takes, consent, finish. "
                              "In one go: echodiary enroll FILE --script ID --consent CONSENT.wav --name NAME")


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _api():  # noqa: ANN202 - (client, enrollment api)
    from producer.client import ApiError, connect
    from producer.enrollment_client import enrollment_for
    from shared.settings import get_settings

    try:
        client = connect(get_settings())
    except ApiError as exc:
        _err(f"error: {exc.detail}")
        raise typer.Exit(1) from exc
    return client, enrollment_for(client)


def _wait(client, job_id: str):  # noqa: ANN001, ANN202 - JobOut
    """Wait for the finish job, noting each change of its state on stderr."""
    seen: list[str] = []

    def note(job) -> None:  # noqa: ANN001
        if not seen or seen[-1] != job.status:
            seen.append(job.status)
            _err(f"finishing: {job.status}")

    return client.wait(job_id, on_update=note)


def _run(fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202 - client errors -> message, exit 1
    from producer.client import ApiError
    from producer.enrollment_client import TakeRefusedError

    try:
        return fn(*args, **kwargs)
    except TakeRefusedError as exc:
        _err("refused: " + "\n".join(exc.messages or [exc.detail]))
        raise typer.Exit(1) from exc
    except ApiError as exc:
        _err(f"error ({exc.status}): {exc.detail}")
        raise typer.Exit(1) from exc


def _report_take(take) -> None:  # noqa: ANN001 - TakeOut
    where = "whole script" if take.kind == "whole_script" else take.kind if take.sentence is None else f"sentence {take.sentence}"
    _err(f"{where}: {take.status}, {take.seconds:.1f} s, {len(take.clips)} clips")
    for rejected in take.rejected:
        _err(f"  sentence {rejected.get('sentence')}: {rejected.get('reason')}")


def _accept_notice(enroll, language: str, yes: bool) -> None:  # noqa: ANN001
    _err(_run(enroll.notice, language).notice)
    if not yes and not typer.confirm("Do you accept this?", err=True):
        raise typer.Exit(1)


@enroll_app.command("scripts")
def scripts(script_id: str = typer.Argument(None, help="Print this script's sentences, one per line")) -> None:
    """List the reading scripts, or print one script's sentences."""
    _, enroll = _api()
    if script_id:
        for sentence in _run(enroll.script, script_id).sentences:
            typer.echo(sentence)
        return
    for script in _run(enroll.scripts):
        typer.echo(f"{script.script_id}\t{script.message_language}\t{len(script.sentences)}\t{script.title}")


@enroll_app.command("consent-text")
def consent_text(language: str = typer.Option("zh", "--language", "-l", help="zh or en")) -> None:
    """Print the consent statement to read aloud (it names you and today's date)."""
    _, enroll = _api()
    typer.echo(_run(enroll.consent_text, language).statement)


@enroll_app.command("start")
def start(script: str = typer.Option(..., "--script", "-s", help="Script id (`echodiary enroll scripts`)"),
          name: str = typer.Option(None, "--name", help="Name of the new voice"),
          voice: str = typer.Option(None, "--voice", help="Add the takes to this ready voice instead (more samples)"),
          language: str = typer.Option(None, "--language", "-l", help="zh or en (default: the script's)"),
          yes: bool = typer.Option(False, "--yes", "-y", help="Accept the notice without asking")) -> None:
    """Start a session; prints its id (the statement to read goes to stderr)."""
    if not name and not voice:
        _err("error: give --name for a new voice, or --voice VOICE to add samples to one")
        raise typer.Exit(2)
    _, enroll = _api()
    facts = _run(enroll.script, script)
    _accept_notice(enroll, language or facts.message_language, yes)
    session = _run(enroll.start, script, name or "-", True, language, voice)
    typer.echo(session.enrollment_id)
    if voice:
        _err(f"adding samples to voice {voice}: record takes, then `echodiary enroll finish {session.enrollment_id}`")
    else:
        _err(f"consent statement to read: {session.statement}")


@enroll_app.command("take")
def take(session_id: str, sentence: str = typer.Argument(..., help="Sentence number from 1, or 'all'"),
         audio: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Upload one take (a new take of a sentence replaces the old one)."""
    _, enroll = _api()
    _report_take(_run(enroll.put_take, session_id, sentence, audio))


@enroll_app.command("consent")
def consent(session_id: str, audio: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Upload your reading of the consent statement."""
    _, enroll = _api()
    _report_take(_run(enroll.put_consent, session_id, audio))


def _finish(client, enroll, session_id: str, wait: bool) -> None:  # noqa: ANN001
    created = _run(enroll.finish, session_id)
    typer.echo(created.voice_id)
    if not wait:
        return
    job = _run(_wait, client, created.job_id)
    if job.status != "succeeded":
        _err(f"enrollment {job.status}: {job.error or ''}".rstrip(": "))
        raise typer.Exit(1)
    details = _run(enroll.consent, created.voice_id)
    voice = _run(client.voice, created.voice_id)
    if voice.finetune_note:
        _err(voice.finetune_note)
    _err(f"voice {created.voice_id} ready: consent {details.consent} (score {details.score} >= "
         f"{details.threshold}, {details.model}), {details.clean_seconds} s of clean speech, "
         f"{details.dataset_clips} clips to fine-tune on")


@enroll_app.command("finish")
def finish(session_id: str, wait: bool = typer.Option(True, help="Wait for the voice to be ready")) -> None:
    """Turn the session into a voice; prints the voice id."""
    client, enroll = _api()
    _finish(client, enroll, session_id, wait)


@enroll_app.command("status")
def status(session_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """A session's takes, their quality, and what is missing."""
    _, enroll = _api()
    session = _run(enroll.session, session_id)
    if as_json:
        typer.echo(json.dumps(session.model_dump(mode="json"), ensure_ascii=False, indent=2))
        return
    typer.echo(f"{session.enrollment_id}  {session.status}  script {session.script_id}  voice {session.voice_name}")
    for t in session.takes:
        _report_take(t)
    if session.missing_sentences:
        typer.echo("missing sentences: " + " ".join(map(str, session.missing_sentences)))
    if session.extends_voice:  # the voice's consent stands; these takes only add samples
        typer.echo(f"adds samples to voice {session.voice_id}")
    else:
        typer.echo("consent: " + ("recorded" if session.consent_recorded else "missing"))
    if session.error:
        typer.echo(f"last finish failed: {session.error}")


@enroll_app.command(ONE_SHOT, hidden=True)
def one_shot(audio: Path = typer.Argument(..., exists=True, dir_okay=False, help="One take of the whole script"),
             script: str = typer.Option(..., "--script", "-s"),
             consent_audio: Path = typer.Option(..., "--consent", exists=True, dir_okay=False),
             name: str = typer.Option(..., "--name"),
             language: str = typer.Option(None, "--language", "-l"),
             yes: bool = typer.Option(False, "--yes", "-y", help="Accept the notice without asking")) -> None:
    """All in one: start, the whole-script take, the consent, finish and wait; prints the voice id."""
    client, enroll = _api()
    facts = _run(enroll.script, script)
    _accept_notice(enroll, language or facts.message_language, yes)
    session = _run(enroll.start, script, name, True, language)
    _report_take(_run(enroll.put_take, session.enrollment_id, "all", audio))
    _report_take(_run(enroll.put_consent, session.enrollment_id, consent_audio))
    _finish(client, enroll, session.enrollment_id, True)


def register(app: typer.Typer) -> None:
    app.add_typer(enroll_app, name="enroll")
