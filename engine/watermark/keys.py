"""The server's watermark keys: made at first use in the data folder, rotated, several active at once.

Each key is 32 random bytes. Everything secret the mark needs (the time-frequency pattern, the MAC
key, the key for the label's keyed hash) is derived from it with HMAC-SHA256 under distinct labels,
so one secret per key is all the file holds. A key's id is public: a short hash of the secret.
The primary key marks new audio; every active key is tried at detection, so files marked before a
rotation are still recognised.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

KEYRING_FILE = Path("watermark") / "keys.json"


@dataclass(frozen=True)
class WatermarkKey:
    secret: bytes = field(repr=False)
    created: str = ""
    active: bool = True

    @property
    def id(self) -> str:
        return hashlib.sha256(b"echodiary.wm.key-id" + self.secret).hexdigest()[:12]

    def derive(self, purpose: str) -> bytes:
        return hmac.new(self.secret, b"echodiary.wm.v1." + purpose.encode(), hashlib.sha256).digest()

    @property
    def pattern_seed(self) -> int:
        return int.from_bytes(self.derive("pattern"), "big")

    @property
    def mac_key(self) -> bytes:
        return self.derive("mac")

    @property
    def label_key(self) -> bytes:
        return self.derive("label")

    @classmethod
    def generate(cls) -> WatermarkKey:
        return cls(secret=secrets.token_bytes(32), created=datetime.now(UTC).isoformat(timespec="seconds"))


@dataclass
class Keyring:
    keys: list[WatermarkKey]
    primary_id: str
    path: Path | None = None

    @classmethod
    def generate(cls, path: Path | None = None) -> Keyring:
        key = WatermarkKey.generate()
        return cls(keys=[key], primary_id=key.id, path=path)

    @property
    def primary(self) -> WatermarkKey:
        return self.get(self.primary_id)

    @property
    def active(self) -> list[WatermarkKey]:
        """Keys tried at detection, the primary first."""
        rest = [k for k in self.keys if k.active and k.id != self.primary_id]
        return [self.primary, *rest]

    def get(self, key_id: str) -> WatermarkKey:
        for key in self.keys:
            if key.id == key_id:
                return key
        raise KeyError(f"no watermark key with id {key_id}")

    def rotate(self) -> WatermarkKey:
        """Make a new primary key; older keys stay active for detection."""
        key = WatermarkKey.generate()
        self.keys.append(key)
        self.primary_id = key.id
        self.save()
        return key

    def retire(self, key_id: str) -> None:
        """Stop trying a key at detection (it is kept in the file, so it can be re-activated by hand)."""
        if key_id == self.primary_id:
            raise ValueError("the primary key cannot be retired; rotate first")
        self.keys = [replace(k, active=False) if k.id == key_id else k for k in self.keys]
        self.save()

    def to_json(self) -> str:
        keys = [{"id": k.id, "secret": k.secret.hex(), "created": k.created, "active": k.active} for k in self.keys]
        return json.dumps({"version": 1, "primary": self.primary_id, "keys": keys}, indent=2)

    @classmethod
    def from_json(cls, text: str, path: Path | None = None) -> Keyring:
        doc = json.loads(text)
        if doc.get("version") != 1:
            raise ValueError(f"unknown watermark keyring version {doc.get('version')!r}")
        keys = [WatermarkKey(bytes.fromhex(k["secret"]), k.get("created", ""), bool(k.get("active", True)))
                for k in doc["keys"]]
        ring = cls(keys=keys, primary_id=doc["primary"], path=path)
        ring.get(ring.primary_id)
        return ring

    def save(self) -> None:
        if self.path is None:
            return
        _write_private(self.path, self.to_json(), replace_existing=True)


def load_keyring(data_dir: Path | str) -> Keyring:
    """The keyring in ``data_dir``, generated on first use (safe when several processes start at once)."""
    path = Path(data_dir) / KEYRING_FILE
    if not path.exists():
        ring = Keyring.generate(path)
        _write_private(path, ring.to_json(), replace_existing=False)
    return Keyring.from_json(path.read_text(), path=path)


def _write_private(path: Path, text: str, *, replace_existing: bool) -> None:
    """Write a file only its owner can read, atomically; without replace, the first writer wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".keys-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if replace_existing:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
