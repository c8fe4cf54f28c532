"""`echodiary` commands that run the servers: the API (serve), a Celery worker, Flower."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import typer

from producer.cli.calls import err
from shared.settings import get_settings


def serve(host: str = typer.Option(None, help="Address to bind (default: ECHODIARY_HOST, 127.0.0.1; "
                                     "0.0.0.0 to reach it from phones)"),
          port: int = typer.Option(None, help="Port (default: ECHODIARY_PORT, 8000)"),
          tls: bool = typer.Option(False, "--tls", help="Serve HTTPS (needed for the microphone on a phone) with a "
                                   "certificate made on first start and kept in the data folder."),
          tls_cert: Path = typer.Option(None, help="Your own certificate (PEM) (default: ECHODIARY_TLS_CERT)."),
          tls_key: Path = typer.Option(None, help="The key of --tls-cert (PEM) (default: ECHODIARY_TLS_KEY).")) -> None:
    """Run the HTTP API and the household page (embedded mode: jobs run inside it; server mode: on the workers)."""
    import uvicorn

    from producer.api import create_app

    settings = get_settings()
    host, port = host or settings.host, port or settings.port
    files = _tls_files(settings.data_dir, tls, tls_cert or settings.tls_cert, tls_key or settings.tls_key)
    app = create_app(settings)
    if files:
        _announce_tls(files, host, port)
    uvicorn.run(app, host=host, port=port, log_level="info",
                ssl_certfile=str(files.cert) if files else None, ssl_keyfile=str(files.key) if files else None)


def _tls_files(data_dir: Path, tls: bool, cert: Path | None, key: Path | None):  # noqa: ANN202 - TlsFiles | None
    from producer import tls as tls_files

    if (cert is None) != (key is None):
        raise typer.BadParameter("give --tls-cert and --tls-key together")
    if cert and key:
        return tls_files.own_certificate(cert, key)
    return tls_files.ensure_certificate(data_dir / "tls") if tls else None


def _announce_tls(files, host: str, port: int) -> None:  # noqa: ANN001 - producer.tls.TlsFiles
    from producer import tls as tls_files

    if files.ca is None:
        err(f"serving HTTPS with {files.cert}")
        return
    _, ips = tls_files.local_addresses()
    reachable = [ip for ip in ips if ":" not in ip and not ip.startswith("127.")] if host in ("0.0.0.0", "::") else []
    err(f"serving HTTPS with a certificate from the household CA {files.ca}")
    err(f"  trust that CA once on each phone (README, 'Phones'); SHA-256 {tls_files.fingerprint(files.ca)}")
    for ip in reachable:
        err(f"  from the household network: https://{ip}:{port}/")
    if host not in ("0.0.0.0", "::"):
        err("  only this machine can connect: add --host 0.0.0.0 for phones")


def default_worker_name(device: str, host: str | None = None, pid: int | None = None) -> str:
    """A Celery node name unique per process, so two workers on one host show apart in Flower.

    A device naming one GPU (``cuda:1``) gives ``echodiary-<host>-gpu1``; otherwise the pid.
    """
    host = host or socket.gethostname()
    match = re.fullmatch(r"cuda:(\d+)", device.strip())
    suffix = f"gpu{match.group(1)}" if match else str(pid if pid is not None else os.getpid())
    return f"echodiary-{host}-{suffix}@{host}"


def worker(queues: str = typer.Option("gpu,cpu", help="Queues to consume: gpu (model work), cpu (light work)"),
           concurrency: int = typer.Option(1, help="Processes; keep 1 per GPU"),
           name: str = typer.Option(None, help="Worker name (default: echodiary-<host>-<pid or gpuN>)"),
           loglevel: str = typer.Option("INFO")) -> None:
    """Run a Celery worker. Models load in the worker's child process on its first job."""
    settings = get_settings()
    if settings.embedded:
        err("no broker configured (ECHODIARY_BROKER_URL): in the embedded mode jobs run in the "
             "echodiary process itself and no worker is needed")
        raise typer.Exit(2)
    from worker.app import app

    argv = ["worker", "-Q", queues, "--concurrency", str(concurrency), "--pool", "prefork",
            "--loglevel", loglevel]
    argv += ["-n", name or default_worker_name(settings.device)]
    app.worker_main(argv)


def flower(address: str = typer.Option(None), port: int = typer.Option(None)) -> None:
    """Run Flower, the Celery dashboard (bound to localhost, basic auth from ECHODIARY_FLOWER_BASIC_AUTH)."""
    settings = get_settings()
    if settings.embedded:
        err("no broker configured (ECHODIARY_BROKER_URL): there are no workers to show")
        raise typer.Exit(2)
    from worker import flowerconfig
    from worker.app import app

    argv = ["flower", f"--address={address or settings.flower_address}", f"--port={port or settings.flower_port}",
            f"--conf={Path(flowerconfig.__file__)}"]
    if settings.flower_basic_auth:
        argv.append(f"--basic-auth={settings.flower_basic_auth}")
    elif (address or settings.flower_address) not in ("127.0.0.1", "localhost", "::1"):
        err("refusing to serve Flower beyond localhost without ECHODIARY_FLOWER_BASIC_AUTH")
        raise typer.Exit(2)
    app.start(argv)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command()(serve)
    app.command()(worker)
    app.command()(flower)
