"""Both storage backends against the real thing: a SeaweedFS S3 server and a local folder."""

from __future__ import annotations

import time

import httpx
import pytest

from shared import keys
from shared.settings import Settings
from shared.storage import LocalStorage, NotFound, S3Storage, StorageError, StorageUnavailable, make_storage


@pytest.fixture(params=["s3", "local"])
def storage(request, tmp_path):
    if request.param == "s3":
        s3 = request.getfixturevalue("s3")
        store = S3Storage(s3.endpoint_url, s3.access_key, s3.secret_key, s3.bucket)
        prefix = f"members/{keys.new_id()}/"
        yield store, prefix
        store.delete_prefix(prefix)
    else:
        yield LocalStorage(tmp_path / "storage", "http://testserver", b"k" * 32), f"members/{keys.new_id()}/"


def test_put_get_list_and_delete(storage):
    store, prefix = storage
    store.put(prefix + "a/one.wav", b"RIFF-one", "audio/wav")
    store.put(prefix + "b/two.flac", b"fLaC-two")
    store.put(prefix + "a/one.wav", b"RIFF-one-again")  # the same key again: still one object
    assert store.get(prefix + "a/one.wav") == b"RIFF-one-again"
    assert store.list(prefix) == [prefix + "a/one.wav", prefix + "b/two.flac"]
    assert store.exists(prefix + "b/two.flac") and not store.exists(prefix + "c")
    with pytest.raises(NotFound):
        store.get(prefix + "missing")
    assert store.delete_prefix(prefix + "a/") == 1
    assert store.list(prefix) == [prefix + "b/two.flac"]
    store.delete(prefix + "b/two.flac")
    store.delete(prefix + "b/two.flac")  # deleting what is gone is fine
    assert store.list(prefix) == []


def test_s3_presigned_links_work_then_expire(s3):
    store = S3Storage(s3.endpoint_url, s3.access_key, s3.secret_key, s3.bucket)
    key = f"members/{keys.new_id()}/jobs/{keys.new_id()}/result.wav"
    store.put(key, b"RIFF....WAVE")
    # The signing time has whole-second resolution, so a 1 s link can be stale on arrival: give it 3 s.
    url = store.url(key, expires_in=3, filename="x.wav")
    response = httpx.get(url)
    assert response.status_code == 200 and response.content == b"RIFF....WAVE"
    assert response.headers["content-disposition"] == 'attachment; filename="x.wav"'
    time.sleep(4.1)
    assert httpx.get(url).status_code == 403
    store.delete(key)


def test_local_links_are_signed_and_expire(tmp_path):
    store = LocalStorage(tmp_path, "http://testserver", b"secret" * 6)
    url = store.url("members/a/b.wav", expires_in=60)
    query = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&"))
    expires, sig = int(query["expires"]), query["sig"]
    assert store.check_signature("members/a/b.wav", expires, sig)
    assert not store.check_signature("members/a/c.wav", expires, sig)  # a signature covers one key
    assert not store.check_signature("members/a/b.wav", expires + 1, sig)
    assert not store.check_signature("members/a/b.wav", int(time.time()) - 1,
                                     store.signature("members/a/b.wav", int(time.time()) - 1))


def test_local_keys_cannot_escape_the_folder(tmp_path):
    store = LocalStorage(tmp_path / "s", "http://testserver", b"k" * 32)
    for key in ("../outside", "members/../../outside", "/etc/passwd"):
        with pytest.raises(StorageError):
            store.put(key, b"x")


def test_object_keys_are_built_from_ids_only():
    member, job = keys.new_id(), keys.new_id()
    assert keys.result_key(member, job, "flac") == f"members/{member}/jobs/{job}/result.flac"
    for bad in ("../x", "A" * 32, "my voice", member + "/"):
        with pytest.raises(ValueError):
            keys.voice_prefix(member, bad)
    with pytest.raises(ValueError):
        keys.result_key(member, job, "exe")


def test_check_answers_for_a_bucket_that_exists_only(s3):
    S3Storage(s3.endpoint_url, s3.access_key, s3.secret_key, s3.bucket).check()
    with pytest.raises(StorageError):
        S3Storage(s3.endpoint_url, s3.access_key, s3.secret_key, "no-such-bucket-here").check()


def test_an_unreachable_s3_server_is_reported_as_unavailable():
    from jobs_fixtures import free_port

    store = S3Storage(f"http://127.0.0.1:{free_port()}", "a", "b", "bucket")
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        store.put("members/x", b"x")
    assert time.monotonic() - started < 20


def test_settings_choose_the_backend(tmp_path, s3):
    local = make_storage(Settings(_env_file=None, data_dir=tmp_path))
    assert isinstance(local, LocalStorage) and local.root == (tmp_path / "storage").resolve()
    assert (tmp_path / "secrets" / "url-signing.key").stat().st_mode & 0o077 == 0
    remote = make_storage(Settings(_env_file=None, data_dir=tmp_path, s3_endpoint_url=s3.endpoint_url,
                                   s3_access_key=s3.access_key, s3_secret_key=s3.secret_key, s3_bucket=s3.bucket))
    assert isinstance(remote, S3Storage) and remote.bucket == s3.bucket


def test_a_streamed_object_appears_only_when_committed_with_its_new_head(storage, monkeypatch):
    import shared.storage as storage_module

    monkeypatch.setattr(storage_module, "PART_SIZE", 5 * 1024 * 1024)  # S3's smallest part: three parts
    store, prefix = storage
    key = prefix + "jobs/one/result.wav"
    pieces = [bytes([i % 251]) * 700_001 for i in range(17)]
    with store.open_writer(key, "audio/wav") as out:
        for piece in pieces:
            out.write(piece)
            assert not store.exists(key)  # nothing half-written is visible
        out.commit(b"HEAD-REWRITTEN", replace=4)
    assert store.get(key) == b"HEAD-REWRITTEN" + b"".join(pieces)[4:]


def test_a_streamed_object_that_is_aborted_leaves_nothing(storage):
    store, prefix = storage
    key = prefix + "jobs/two/result.flac"
    with pytest.raises(RuntimeError), store.open_writer(key) as out:
        out.write(b"fLaC" * 1000)
        raise RuntimeError("the render failed")
    assert not store.exists(key) and store.list(prefix) == []
    with store.open_writer(key) as out:
        out.write(b"abc")
        with pytest.raises(StorageError):
            out.commit(b"x", replace=4)  # past what it wrote
    assert not store.exists(key)
