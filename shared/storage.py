"""Where audio and voice profiles live: an S3 bucket (MinIO, SeaweedFS, AWS) or a local folder.

Both backends take keys from :mod:`shared.keys` and hand out links that expire: S3 presigned GET
URLs, or for the local folder an HMAC-signed ``/v1/files/...`` link that the API checks. Network
and server-side failures surface as :class:`StorageUnavailable`, which workers retry with backoff.

``open_writer`` writes one object as its bytes are made (a render streaming its pieces): S3
multipart parts of ``PART_SIZE``, or a temporary file beside the folder's object. The object
appears only at ``commit`` and never half-written; a writer left without commit is aborted. The
first bytes stay replaceable until then (``held``), because containers rewrite their header at
close: S3 keeps the first part back and uploads it last, the folder rewrites the file's start.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import shutil
import time
from pathlib import Path
from types import TracebackType
from typing import Protocol
from urllib.parse import quote, urlencode

from shared.settings import Settings


class StorageError(Exception):
    """Base class of storage failures."""


class NotFound(StorageError):
    """No object under that key."""


class StorageUnavailable(StorageError):
    """The storage server could not be reached or answered with a server error: worth retrying."""


class Storage(Protocol):
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def list(self, prefix: str) -> list[str]: ...
    def url(self, key: str, expires_in: int, filename: str | None = None) -> str: ...
    def check(self) -> None: ...
    def open_writer(self, key: str, content_type: str = "application/octet-stream") -> ObjectWriter: ...


PART_SIZE = 8 * 1024 * 1024  # S3 parts but the last must be at least 5 MiB


class ObjectWriter:
    """One object written as its bytes come: ``write``, then ``commit`` (or ``abort``).

    ``commit(head, replace)`` puts ``head`` in place of the first ``replace`` bytes, which must be
    within the first ``held`` bytes. As a context manager it aborts unless committed.
    """

    held: int

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def commit(self, head: bytes = b"", replace: int = 0) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if not self._done:
            self.abort()

    _done = False

    def _check_replace(self, replace: int) -> None:
        if self._done:
            raise StorageError("this object was already committed or aborted")
        if not 0 <= replace <= self.held:
            raise StorageError(f"only the first {self.held} bytes can be replaced at commit, not {replace}")


class S3Writer(ObjectWriter):
    """A multipart upload: the first part (at least PART_SIZE) is held and uploaded last."""

    def __init__(self, storage: S3Storage, key: str, content_type: str) -> None:
        self._storage, self._key, self._content_type = storage, key, content_type
        self._first = bytearray()
        self._rest = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict] = []

    @property
    def held(self) -> int:
        return len(self._first)

    def write(self, data: bytes) -> None:
        if len(self._first) < PART_SIZE:
            self._first += data
            return
        self._rest += data
        if len(self._rest) >= PART_SIZE:
            self._upload_part(len(self._parts) + 2, bytes(self._rest))
            self._rest.clear()

    def _upload_part(self, number: int, body: bytes) -> None:
        call, client = self._storage._call, self._storage.client
        if self._upload_id is None:
            self._upload_id = call(client.create_multipart_upload, Key=self._key,
                                   ContentType=self._content_type)["UploadId"]
        done = call(client.upload_part, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=body)
        self._parts.append({"PartNumber": number, "ETag": done["ETag"]})

    def commit(self, head: bytes = b"", replace: int = 0) -> None:
        self._check_replace(replace)
        first = bytes(head) + bytes(self._first[replace:])
        try:
            if self._upload_id is None:
                self._storage.put(self._key, first + bytes(self._rest), self._content_type)
            else:
                if self._rest:
                    self._upload_part(len(self._parts) + 2, bytes(self._rest))
                self._upload_part(1, first)
                parts = sorted(self._parts, key=lambda part: part["PartNumber"])
                self._storage._call(self._storage.client.complete_multipart_upload, Key=self._key,
                                    UploadId=self._upload_id, MultipartUpload={"Parts": parts})
        except BaseException:
            self.abort()
            raise
        self._done = True

    def abort(self) -> None:
        self._done = True
        self._first.clear()
        self._rest.clear()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            try:
                self._storage._call(self._storage.client.abort_multipart_upload, Key=self._key, UploadId=upload_id)
            except StorageError:  # the bucket's lifecycle rules reap what is left
                pass


class LocalWriter(ObjectWriter):
    """A temporary file beside the object, moved into place at commit."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        self._file = self._tmp.open("wb")
        self.held = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self.held += len(data)

    def commit(self, head: bytes = b"", replace: int = 0) -> None:
        self._check_replace(replace)
        try:
            self._file.close()
            if len(head) == replace:
                with self._tmp.open("r+b") as f:
                    f.write(head)
            else:  # the header changed length: copy the rest behind the new one
                moved = self._tmp.with_name(self._tmp.name + ".2")
                with self._tmp.open("rb") as src, moved.open("wb") as dst:
                    dst.write(head)
                    src.seek(replace)
                    shutil.copyfileobj(src, dst)
                os.replace(moved, self._tmp)
            os.replace(self._tmp, self._path)
        except BaseException:
            self.abort()
            raise
        self._done = True

    def abort(self) -> None:
        self._done = True
        self._file.close()
        self._tmp.unlink(missing_ok=True)


CONTENT_TYPES = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "mp3": "audio/mpeg",
}


class S3Storage:
    """An S3 bucket through boto3 (path-style addressing, SigV4, as MinIO and SeaweedFS expect)."""

    def __init__(self, endpoint_url: str | None, access_key: str | None, secret_key: str | None,
                 bucket: str, region: str = "us-east-1", public_endpoint_url: str | None = None) -> None:
        import boto3
        from botocore.config import Config

        config = Config(signature_version="s3v4", s3={"addressing_style": "path"},
                        retries={"max_attempts": 3, "mode": "standard"},
                        connect_timeout=5, read_timeout=60)
        kwargs = dict(aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                      region_name=region, config=config)
        self.bucket = bucket
        self.client = boto3.client("s3", endpoint_url=endpoint_url, **kwargs)
        # Links are signed for the address clients use, which may differ from the one inside a
        # compose network (http://minio:9000 for the API, http://localhost:9000 for the browser).
        self.signer = (boto3.client("s3", endpoint_url=public_endpoint_url, **kwargs)
                       if public_endpoint_url else self.client)

    def _call(self, fn, **kwargs):  # noqa: ANN001, ANN202 - thin wrapper over any boto3 call
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in ("NoSuchKey", "404", "NotFound"):
                raise NotFound(kwargs.get("Key", "")) from exc
            if status >= 500 or code in ("SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"):
                raise StorageUnavailable(f"S3 {code or status}: {exc}") from exc
            raise StorageError(f"S3 {code or status}: {exc}") from exc
        except BotoCoreError as exc:  # connection refused, timeouts, closed connections
            raise StorageUnavailable(f"S3 unreachable: {exc}") from exc

    def ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self._call(self.client.create_bucket)

    def check(self) -> None:
        """Raise unless the bucket answers."""
        self._call(self.client.head_bucket)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._call(self.client.put_object, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        return self._call(self.client.get_object, Key=key)["Body"].read()

    def exists(self, key: str) -> bool:
        try:
            self._call(self.client.head_object, Key=key)
            return True
        except NotFound:
            return False

    def delete(self, key: str) -> None:
        self._call(self.client.delete_object, Key=key)

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        token: dict[str, str] = {}
        while True:
            page = self._call(self.client.list_objects_v2, Prefix=prefix, **token)
            keys += [obj["Key"] for obj in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return keys
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

    def open_writer(self, key: str, content_type: str = "application/octet-stream") -> ObjectWriter:
        return S3Writer(self, key, content_type)

    def url(self, key: str, expires_in: int, filename: str | None = None) -> str:
        params = {"Bucket": self.bucket, "Key": key}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        return self.signer.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)


class LocalStorage:
    """A folder on this machine, for the embedded mode; links are signed with a key kept beside it."""

    def __init__(self, root: Path, base_url: str, secret: bytes) -> None:
        self.root = Path(root).resolve()
        self.base_url = base_url.rstrip("/")
        self.secret = secret

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise StorageError(f"key {key!r} points outside the storage folder")
        return path

    def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"the storage folder {self.root} is not writable")

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # readers see the old object or the new one, never half of one

    def open_writer(self, key: str, content_type: str = "application/octet-stream") -> ObjectWriter:
        return LocalWriter(self._path(key))

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(key) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix
        start = base if base.is_dir() else base.parent
        if not start.is_dir():
            return []
        keys = [p.relative_to(self.root).as_posix() for p in start.rglob("*") if p.is_file()]
        return sorted(k for k in keys if k.startswith(prefix) and not Path(k).name.startswith("."))

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for key in keys:
            self.delete(key)
        # Leave no empty folders behind.
        for folder in sorted({self._path(k).parent for k in keys}, key=lambda p: len(p.parts), reverse=True):
            while folder != self.root and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
                folder = folder.parent
        return len(keys)

    def signature(self, key: str, expires: int) -> str:
        return hmac.new(self.secret, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def url(self, key: str, expires_in: int, filename: str | None = None) -> str:
        expires = int(time.time()) + expires_in
        query = {"expires": expires, "sig": self.signature(key, expires)}
        if filename:
            query["filename"] = filename
        return f"{self.base_url}/v1/files/{quote(key)}?{urlencode(query)}"

    def check_signature(self, key: str, expires: int, sig: str) -> bool:
        return expires >= time.time() and hmac.compare_digest(sig, self.signature(key, expires))


def _local_secret(data_dir: Path) -> bytes:
    """The key that signs local download links, made on first use and kept in the data folder."""
    path = Path(data_dir) / "secrets" / "url-signing.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{secrets.token_hex(4)}.tmp")
        tmp.write_bytes(secrets.token_bytes(32))
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)  # first writer wins when several processes start together
        except FileExistsError:
            pass
        tmp.unlink()
    return path.read_bytes()


def make_storage(settings: Settings) -> Storage:
    """S3 when an endpoint or keys are configured, else a folder under the data folder."""
    if settings.s3_endpoint_url or settings.s3_access_key:
        return S3Storage(settings.s3_endpoint_url, settings.s3_access_key, settings.s3_secret_key,
                         settings.s3_bucket, settings.s3_region, settings.s3_public_endpoint_url)
    return LocalStorage(settings.storage_dir, settings.api_url, _local_secret(settings.data_dir))
