"""Backups: one folder holding a consistent snapshot of an installation, and its restore.

A backup holds the database (every table, one JSON line per row, read in one snapshot transaction),
the storage objects (references, voice profiles, fine-tuned weights, results), the data folder's
``watermark/`` keyring (so restored audio still verifies as ours) and the settings minus secrets.
The same format serves SQLite + folder and PostgreSQL + S3, so a backup can move between modes.

Consistency: the database is read first, in one transaction (REPEATABLE READ on PostgreSQL, a WAL
read snapshot on SQLite); every object that snapshot refers to is then copied. An object written
after the snapshot belongs to a row the snapshot does not have and is left out; an object deleted
in between (an expired result, a deleted voice) is listed in the manifest as ``missing``. The
folder is written under a temporary name and renamed when complete, so a half-written backup never
looks like a backup. ``restore`` refuses a database that already has members.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Table, insert, select
from sqlmodel import SQLModel

from shared.db import Database, get_database
from shared.settings import Settings
from shared.storage import CONTENT_TYPES, Storage, make_storage

FORMAT_VERSION = 1
MANIFEST, TABLES, OBJECTS, KEYRING = "manifest.json", "tables", "objects", "watermark"
OBJECT_PREFIX = "members/"
SECRET_SETTINGS = ("s3_access_key", "s3_secret_key", "api_token", "flower_basic_auth")
URL_SETTINGS = ("database_url", "broker_url")  # kept, with any password removed


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message says why and what to do."""


@dataclass
class Summary:
    folder: Path
    rows: dict[str, int] = field(default_factory=dict)
    objects: int = 0
    object_bytes: int = 0
    missing: list[str] = field(default_factory=list)


def backup(settings: Settings, folder: Path) -> Summary:
    """Write a snapshot of the installation ``settings`` describes into ``folder`` (new or empty)."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise BackupError(f"{folder} is not empty; give a new folder for each backup (e.g. one per date)")
    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / TABLES).mkdir(parents=True)
    summary = Summary(folder)
    db = get_database(settings.sqlalchemy_url)
    summary.rows = _dump_tables(db, partial / TABLES)
    keys = _object_keys(partial / TABLES)
    digests = _copy_objects_out(make_storage(settings), keys, partial / OBJECTS, summary)
    _copy_keyring(settings.data_dir / KEYRING, partial / KEYRING)
    _write_json(partial / MANIFEST, {
        "format": FORMAT_VERSION, "created_at": time.time(), "database": "sqlite" if db.is_sqlite else "postgresql",
        "rows": summary.rows, "objects": digests, "missing": summary.missing,
        "settings": public_settings(settings),
    })
    if folder.exists():
        folder.rmdir()
    os.replace(partial, folder)
    return summary


def restore(settings: Settings, folder: Path) -> Summary:
    """Bring the snapshot in ``folder`` into the (empty) installation ``settings`` describes."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    db = get_database(settings.sqlalchemy_url)
    tables = _tables()
    with db.read() as session:
        if session.exec(select(tables["member"].c.id).limit(1)).first() is not None:
            raise BackupError("this installation already has members; restore onto a fresh data folder "
                              "and an empty database")
    summary = Summary(folder, missing=list(manifest.get("missing", [])))
    _restore_keyring(folder / KEYRING, settings.data_dir / KEYRING)
    _copy_objects_in(make_storage(settings), folder / OBJECTS, manifest["objects"], summary)
    summary.rows = _load_tables(db, folder / TABLES)
    return summary


def public_settings(settings: Settings) -> dict[str, Any]:
    """The settings as JSON, without keys, tokens or passwords (those stay with the operator)."""
    values = json.loads(settings.model_dump_json())
    for name in SECRET_SETTINGS:
        values.pop(name, None)
    for name in URL_SETTINGS:
        if values.get(name):
            values[name] = _without_password(values[name])
    return values


def _without_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL (a Redis URL): drop everything before the host
        scheme, _, rest = url.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}" if rest else url


# --- database ----------------------------------------------------------------------------------

def _tables() -> dict[str, Table]:
    return {table.name: table for table in SQLModel.metadata.sorted_tables}


def _dump_tables(db: Database, out: Path) -> dict[str, int]:
    """Every table in one read transaction, parents before children."""
    rows: dict[str, int] = {}
    with db.read_engine.connect() as conn:
        if not db.is_sqlite:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            for name, table in _tables().items():
                with (out / f"{name}.jsonl").open("w", encoding="utf-8") as lines:
                    count = 0
                    for row in conn.execute(select(table)).mappings():
                        lines.write(json.dumps(dict(row), ensure_ascii=False) + "\n")
                        count += 1
                rows[name] = count
    return rows


def _load_tables(db: Database, folder: Path) -> dict[str, int]:
    rows: dict[str, int] = {}
    with db.write_engine.begin() as conn:
        for name, table in _tables().items():
            path = folder / f"{name}.jsonl"
            records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] \
                if path.exists() else []
            known = set(table.c.keys())
            records = [{k: v for k, v in record.items() if k in known} for record in records]
            for start in range(0, len(records), 500):
                conn.execute(insert(table), records[start:start + 500])
            rows[name] = len(records)
    return rows


def _object_keys(tables: Path) -> list[str]:
    """Every storage key the snapshot's rows name (columns ending in ``_key`` that hold a key)."""
    keys: set[str] = set()
    for path in sorted(tables.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            keys.update(v for k, v in record.items()
                        if k.endswith("_key") and isinstance(v, str) and v.startswith(OBJECT_PREFIX))
    return sorted(keys)


# --- objects and keyring -----------------------------------------------------------------------

def _object_path(root: Path, key: str) -> Path:
    path = (root / key).resolve()
    if not key.startswith(OBJECT_PREFIX) or not path.is_relative_to(root.resolve()):
        raise BackupError(f"object key {key!r} in the backup is not a storage key; the backup is damaged")
    return path


def _copy_objects_out(storage: Storage, keys: list[str], root: Path, summary: Summary) -> dict[str, str]:
    from shared.storage import NotFound

    digests: dict[str, str] = {}
    for key in keys:
        try:
            data = storage.get(key)
        except NotFound:
            summary.missing.append(key)  # deleted after the snapshot (expired result, deleted voice)
            continue
        path = _object_path(root, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        digests[key] = hashlib.sha256(data).hexdigest()
        summary.objects += 1
        summary.object_bytes += len(data)
    return digests


def _copy_objects_in(storage: Storage, root: Path, digests: dict[str, str], summary: Summary) -> None:
    for key, digest in digests.items():
        data = _object_path(root, key).read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise BackupError(f"object {key} in the backup does not match its checksum; the backup is damaged")
        storage.put(key, data, _content_type(key))
        summary.objects += 1
        summary.object_bytes += len(data)


def _content_type(key: str) -> str:
    suffix = key.rsplit(".", 1)[-1]
    return CONTENT_TYPES.get(suffix, "application/octet-stream") if "/result." in key \
        else "application/octet-stream"


def _copy_keyring(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target)


def _restore_keyring(source: Path, target: Path) -> None:
    if not source.is_dir():
        return
    if target.exists() and any(target.iterdir()):
        same = all((target / p.relative_to(source)).is_file()
                   and (target / p.relative_to(source)).read_bytes() == p.read_bytes()
                   for p in source.rglob("*") if p.is_file())
        if not same:
            raise BackupError(f"{target} already holds another watermark keyring; restore onto a fresh data "
                              "folder (results made here would otherwise not verify)")
        return
    shutil.copytree(source, target, dirs_exist_ok=True)


# --- manifest ----------------------------------------------------------------------------------

def _write_json(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False, sort_keys=True), encoding="utf-8")


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise BackupError(f"{folder} is not an EchoDiary backup (no {MANIFEST}); give the folder "
                          "`echodiary backup` wrote")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT_VERSION:
        raise BackupError(f"backup format {manifest.get('format')!r} is not one this version reads "
                          f"({FORMAT_VERSION})")
    return manifest
