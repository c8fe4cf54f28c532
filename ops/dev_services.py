"""Development services: Redis, PostgreSQL and SeaweedFS (S3) on 127.0.0.1, started only when absent.

``ops/dev-services`` (start|stop|status) wraps this module; the test fixtures call :func:`ensure_all`.
A service already answering on its port is used as it is and never stopped by us; what we start is
recorded in ``STATE_DIR`` so ``stop`` stops exactly that. SeaweedFS runs as ``weed mini`` with
telemetry off and every port bound to the loopback address.
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
from dataclasses import asdict, dataclass
from pathlib import Path

HOST = "127.0.0.1"
REDIS_PORT = int(os.environ.get("ECHODIARY_DEV_REDIS_PORT", "6379"))
PG_PORT = int(os.environ.get("ECHODIARY_DEV_PG_PORT", "5432"))
S3_PORT = int(os.environ.get("ECHODIARY_DEV_S3_PORT", "8333"))
S3_ACCESS_KEY = "echodiary-dev"
S3_SECRET_KEY = "echodiary-dev-secret"
STATE_DIR = Path(os.environ.get("ECHODIARY_DEV_STATE", "/tmp/echodiary-dev-services"))


@dataclass(frozen=True)
class Services:
    redis_url: str
    postgres_url: str
    s3_endpoint_url: str
    s3_access_key: str
    s3_secret_key: str


def port_open(port: int, host: str = HOST, timeout: float = 0.3) -> bool:
    with socket.socket() as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(port: int, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start listening on {HOST}:{port} within {seconds:.0f} s")


def _record(name: str, pid: int) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    (STATE_DIR / f"{name}.pid").write_text(str(pid))


def _which(cmd: str, *extra_dirs: Path) -> str:
    found = shutil.which(cmd)
    if found:
        return found
    for folder in extra_dirs:
        if (folder / cmd).exists():
            return str(folder / cmd)
    raise RuntimeError(f"'{cmd}' is not installed; run .ci/run once or install it (see README).")


def ensure_redis() -> str:
    """Redis with an append-only file (as compose runs it): a restart keeps queued messages."""
    if not port_open(REDIS_PORT):
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        pidfile = STATE_DIR / "redis.pid"
        subprocess.run(
            [_which("redis-server"), "--daemonize", "yes", "--bind", HOST, "--port", str(REDIS_PORT),
             "--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(STATE_DIR), "--pidfile", str(pidfile),
             "--logfile", str(STATE_DIR / "redis.log")],
            check=True,
        )
        wait_for_port(REDIS_PORT, 10, "Redis")
    return f"redis://{HOST}:{REDIS_PORT}"


def _pg_bin() -> Path:
    out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
    return Path(out.stdout.strip()) if out.returncode == 0 else Path("/usr/lib/postgresql/15/bin")


def ensure_postgres() -> str:
    if not port_open(PG_PORT):
        started = False
        # A Debian cluster that is merely stopped: start it the way the machine image does.
        if shutil.which("pg_lsclusters") and shutil.which("pg_ctlcluster"):
            listing = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=False)
            for line in listing.stdout.splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[2] == str(PG_PORT):
                    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", parts[0], parts[1], "start"],
                                   check=False)
                    started = True
        if not started:
            _start_own_postgres()
        wait_for_port(PG_PORT, 30, "PostgreSQL")
    return f"postgresql+psycopg://postgres@{HOST}:{PG_PORT}/postgres"


def _start_own_postgres() -> None:
    """A throwaway cluster with trust auth, owned by the postgres user (initdb refuses root)."""
    pgbin = _pg_bin()
    data = STATE_DIR / "pgdata"
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    as_postgres = ["su", "postgres", "-c"] if os.geteuid() == 0 else ["sh", "-c"]
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(STATE_DIR, "postgres")
            shutil.chown(data, "postgres")
        subprocess.run(as_postgres + [f"{pgbin}/initdb -D {data} -U postgres --auth=trust >/dev/null"], check=True)
    opts = f"-c listen_addresses={HOST} -p {PG_PORT} -k {data} -c fsync=off -c synchronous_commit=off"
    subprocess.run(as_postgres + [f"{pgbin}/pg_ctl -D {data} -w -l {data}/log -o '{opts}' start >/dev/null"],
                   check=True)
    (STATE_DIR / "postgres.own").write_text(str(data))


def ensure_seaweedfs() -> str:
    if not port_open(S3_PORT):
        weed = _which("weed", Path(sys.executable).parent)
        data = STATE_DIR / "weed"
        data.mkdir(parents=True, exist_ok=True)
        config = STATE_DIR / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "echodiary",
            "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }]}))
        log = open(STATE_DIR / "weed.log", "ab")  # noqa: SIM115 - handed to the daemon
        proc = subprocess.Popen(
            [weed, "mini", f"-dir={data}", f"-ip={HOST}", f"-ip.bind={HOST}", "-master.telemetry=false",
             f"-s3.config={config}", "-webdav=false", "-admin.ui=false", f"-s3.port={S3_PORT}",
             "-s3.port.iceberg=0", "-s3.port.lance=0"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        _record("weed", proc.pid)
        wait_for_port(S3_PORT, 30, "SeaweedFS S3")
    return f"http://{HOST}:{S3_PORT}"


def ensure_all() -> Services:
    return Services(ensure_redis(), ensure_postgres(), ensure_seaweedfs(), S3_ACCESS_KEY, S3_SECRET_KEY)


def stop_all() -> list[str]:
    """Stop what :func:`ensure_all` started (never a service that was already running)."""
    stopped = []
    for name in ("weed", "redis"):
        pidfile = STATE_DIR / f"{name}.pid"
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
                stopped.append(name)
            except (ProcessLookupError, ValueError):
                pass
            pidfile.unlink()
    own_pg = STATE_DIR / "postgres.own"
    if own_pg.exists():
        as_postgres = ["su", "postgres", "-c"] if os.geteuid() == 0 else ["sh", "-c"]
        subprocess.run(as_postgres + [f"{_pg_bin()}/pg_ctl -D {own_pg.read_text()} -m fast stop >/dev/null"],
                       check=False)
        own_pg.unlink()
        stopped.append("postgres")
    return stopped


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "start"
    if command == "start":
        services = ensure_all()
        for key, value in asdict(services).items():
            print(f"{key}={value}")
        return 0
    if command == "stop":
        stopped = stop_all()
        print("stopped: " + (", ".join(stopped) if stopped else "nothing (all were already running before)"))
        return 0
    if command == "status":
        for name, port in (("redis", REDIS_PORT), ("postgres", PG_PORT), ("s3", S3_PORT)):
            print(f"{name}: {'up' if port_open(port) else 'down'} on {HOST}:{port}")
        return 0
    print("usage: ops/dev-services [start|stop|status]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
