"""Database engines and sessions for SQLite (embedded) and PostgreSQL (server), no migration tool.

Tables are created with ``create_all`` when a process first opens the database, and columns added
since are added to existing tables. SQLite runs in WAL mode so readers never wait for a writer;
transactions that write begin with ``BEGIN IMMEDIATE`` so two processes cannot both
read-then-write and lose an update (SQLite ignores ``FOR UPDATE``).
Job state changes themselves are single atomic ``UPDATE ... WHERE status = ...`` statements
(see :mod:`shared.job_state`), correct on both databases.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, SQLModel

import shared.tables  # noqa: F401  (registers the tables on SQLModel.metadata)

SQLITE_BUSY_TIMEOUT_S = 30


def normalize_url(url: str) -> str:
    """Accept the spellings people paste (``postgres://``, ``postgresql://``) and pick psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class Database:
    """One database: a reading and a writing engine (the same one on PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.read_engine = _sqlite_engine(self.url, immediate=False)
            self.write_engine = _sqlite_engine(self.url, immediate=True)
        else:
            self.read_engine = self.write_engine = create_engine(
                self.url, pool_pre_ping=True, pool_size=5, max_overflow=10
            )
        self.create_tables()

    def create_tables(self) -> None:
        with self.write_engine.begin() as conn:
            if not self.is_sqlite:
                # Several processes may start at once; one creates, the others wait and find the tables.
                conn.execute(text("SELECT pg_advisory_xact_lock(46158)"))
            SQLModel.metadata.create_all(conn)
            _add_missing_columns(conn)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; on SQLite it never blocks writers."""
        with Session(self.read_engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose changes are committed at the end of the block (rolled back on error)."""
        with Session(self.write_engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self, close: bool = True) -> None:
        self.read_engine.dispose(close=close)
        if self.write_engine is not self.read_engine:
            self.write_engine.dispose(close=close)


def _add_missing_columns(conn: Connection) -> None:
    """Add columns that a newer version introduced to tables an older one created.

    ``create_all`` creates missing tables only. New columns always carry a server default (or are
    nullable), so adding them is safe on a live database, on SQLite and PostgreSQL alike.
    """
    existing = inspect(conn)
    for table in SQLModel.metadata.sorted_tables:
        if not existing.has_table(table.name):
            continue
        present = {column["name"] for column in existing.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            kind = column.type.compile(dialect=conn.dialect)
            default = f" DEFAULT {column.server_default.arg}" if column.server_default is not None else ""
            not_null = " NOT NULL" if not column.nullable and default else ""
            conn.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}{default}{not_null}'))


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # noqa: ANN001
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


_lock = threading.Lock()
_databases: dict[str, Database] = {}


def get_database(url: str) -> Database:
    """The process-wide :class:`Database` for ``url`` (created, with its tables, on first use)."""
    key = normalize_url(url)
    with _lock:
        if key not in _databases:
            _databases[key] = Database(key)
        return _databases[key]


def _forget_connections_after_fork() -> None:
    # A forked child (Celery prefork) must not reuse the parent's sockets; it opens its own.
    # Nor may it inherit the lock held by a parent thread that was opening a database at the
    # moment of the fork (the worker's sweep thread): that thread does not exist in the child, so
    # the lock would never be released and the child's first job would hang.
    global _lock
    _lock = threading.Lock()
    for db in _databases.values():
        db.dispose(close=False)


os.register_at_fork(after_in_child=_forget_connections_after_fork)
