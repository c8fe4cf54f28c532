"""The chaos stack's own Redis, PostgreSQL and SeaweedFS: each a foreground process of ours, on free
ports of 127.0.0.1, with its data in the run's folder, so it can be killed, stopped and started
again at will without touching the shared development services (6379, 5432, 8333).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ops.dev_services import HOST, port_open

S3_ACCESS_KEY = "echodiary-chaos"
S3_SECRET_KEY = "echodiary-chaos-secret"


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports nobody listens on now (held open together, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            sock = socket.socket()
            sock.bind((HOST, 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def _which(cmd: str) -> str:
    found = shutil.which(cmd) or shutil.which(cmd, path=str(Path(sys.executable).parent))
    if not found:
        raise RuntimeError(f"'{cmd}' is not installed; the chaos suite needs it (see README, 'Chaos suite')")
    return found


class Service:
    """One server process we start, stop and kill by pid; its output goes to ``<logs>/<name>.log``."""

    name = "service"

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def popen_kwargs(self) -> dict:
        return {}

    def start(self, wait_s: float = 60) -> None:
        log = (self.folder.parent / f"{self.name}.log").open("ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, **self.popen_kwargs())
        log.close()
        deadline = time.monotonic() + wait_s
        while not self.ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} at start; "
                                   f"see {self.folder.parent / (self.name + '.log')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer on {HOST}:{self.port} within {wait_s:.0f} s")
            time.sleep(0.1)

    def ready(self) -> bool:
        return port_open(self.port)

    def stop(self, sig: int = signal.SIGTERM, wait_s: float = 30) -> None:
        """Stop the process (SIGTERM: cleanly; SIGKILL: as a crash) and wait until it is gone."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Redis(Service):
    """Redis with an append-only file, as compose and ops/dev-services run it."""

    name = "redis"

    def __init__(self, folder: Path, port: int) -> None:
        super().__init__(folder, port)
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def command(self) -> list[str]:
        return [_which("redis-server"), "--bind", HOST, "--port", str(self.port), "--save", "",
                "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(self.folder)]

    def forget_everything(self) -> None:
        """Remove the append-only file of a stopped Redis: what it held is gone, as with no persistence."""
        assert not self.running, "stop Redis before removing its data"
        shutil.rmtree(self.folder)
        self.folder.mkdir()


class Postgres(Service):
    """A private PostgreSQL cluster (trust auth). initdb and postgres refuse to run as root: as root
    we run them as the ``postgres`` user, which then owns the cluster's folder."""

    name = "postgres"

    def __init__(self, folder: Path, port: int) -> None:
        super().__init__(folder, port)
        self.user = "postgres" if os.geteuid() == 0 else None
        self._initdb()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/postgres"

    @staticmethod
    def _bin(cmd: str) -> str:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        folder = Path(out.stdout.strip()) if out.returncode == 0 else Path("/usr/lib/postgresql/15/bin")
        if not (folder / cmd).exists():
            raise RuntimeError(f"PostgreSQL's {cmd} is not in {folder}; install PostgreSQL (see README)")
        return str(folder / cmd)

    def popen_kwargs(self) -> dict:
        return {"user": self.user, "group": self.user, "extra_groups": [], "cwd": self.folder} if self.user else {}

    def _initdb(self) -> None:
        self.folder.mkdir(parents=True)
        if self.user:
            shutil.chown(self.folder, self.user, self.user)
        done = subprocess.run([self._bin("initdb"), "-D", str(self.folder), "-U", "postgres", "--auth=trust",
                               "--no-sync"], capture_output=True, text=True, **self.popen_kwargs())
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()}")

    def command(self) -> list[str]:
        return [self._bin("postgres"), "-D", str(self.folder), "-p", str(self.port), "-k", str(self.folder),
                "-c", f"listen_addresses={HOST}", "-c", "fsync=off", "-c", "max_connections=200"]

    def ready(self) -> bool:
        done = subprocess.run([self._bin("pg_isready"), "-h", HOST, "-p", str(self.port), "-q"], check=False)
        return done.returncode == 0


class SeaweedFS(Service):
    """``weed mini`` with every port of its own (master, volume, filer, S3, admin and their gRPC ports)."""

    name = "seaweedfs"

    def __init__(self, folder: Path, port: int) -> None:
        super().__init__(folder, port)
        folder.mkdir(parents=True, exist_ok=True)
        # gRPC ports are the HTTP port + 10000 by default: take them explicitly, all free now.
        self.other_ports = free_ports(9)
        self.config = folder.parent / "s3.json"
        self.config.write_text(json.dumps({"identities": [{
            "name": "echodiary", "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self) -> list[str]:
        master, master_g, volume, volume_g, filer, filer_g, s3_g, admin, admin_g = self.other_ports
        return [_which("weed"), "mini", f"-dir={self.folder}", f"-ip={HOST}", f"-ip.bind={HOST}",
                "-master.telemetry=false", f"-s3.config={self.config}", "-webdav=false", "-admin.ui=false",
                f"-master.port={master}", f"-master.port.grpc={master_g}", f"-volume.port={volume}",
                f"-volume.port.grpc={volume_g}", f"-filer.port={filer}", f"-filer.port.grpc={filer_g}",
                f"-s3.port={self.port}", f"-s3.port.grpc={s3_g}", f"-admin.port={admin}",
                f"-admin.port.grpc={admin_g}", "-s3.port.iceberg=0", "-s3.port.lance=0"]

    def ready(self) -> bool:
        if not port_open(self.port):
            return False
        import httpx

        try:  # the S3 port opens before the filer behind it answers
            return httpx.get(f"{self.endpoint_url}/", timeout=2).status_code in (200, 403)
        except httpx.HTTPError:
            return False
