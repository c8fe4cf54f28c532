"""/v1/entries over the real app (SQLite, local storage): CRUD, paging by day, isolation, limits."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from jobs_fixtures import embedded_settings

from producer.api import create_app
from shared import service
from shared.service import open_backend


@pytest.fixture
def stack(tmp_path):
    settings = embedded_settings(tmp_path, max_text_chars=100)
    backend = open_backend(settings, lambda _dispatch: None)
    client = TestClient(create_app(settings, backend))
    _, alice = service.create_member(backend, "alice", admin=True)
    _, bob = service.create_member(backend, "bob")
    return client, {"Authorization": f"Bearer {alice}"}, {"Authorization": f"Bearer {bob}"}


def write(client, headers, day: str, text: str = "今天很好。", **fields):
    r = client.post("/v1/entries", json={"text": text, "language": "zh", "entry_date": day, **fields},
                    headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def test_create_read_edit_delete(stack):
    client, alice, _ = stack
    entry = write(client, alice, "2026-11-30", title="Monday")
    assert entry["title"] == "Monday" and entry["voice_id"] is None and entry["last_job_id"] is None
    assert client.get(f"/v1/entries/{entry['id']}", headers=alice).json() == entry

    r = client.patch(f"/v1/entries/{entry['id']}", json={"text": "改了。", "title": None}, headers=alice)
    assert r.status_code == 200, r.text
    edited = r.json()
    assert edited["text"] == "改了。" and edited["title"] is None and edited["entry_date"] == "2026-11-30"
    assert edited["updated_at"] >= entry["updated_at"]

    assert client.delete(f"/v1/entries/{entry['id']}", headers=alice).status_code == 204
    assert client.get(f"/v1/entries/{entry['id']}", headers=alice).status_code == 404


def test_list_newest_day_first_paged_and_filtered(stack):
    client, alice, _ = stack
    days = ["2026-11-28", "2026-12-01", "2026-11-29", "2026-11-30"]
    ids = {day: write(client, alice, day)["id"] for day in days}
    page = client.get("/v1/entries?limit=3", headers=alice).json()
    assert [e["entry_date"] for e in page["entries"]] == ["2026-12-01", "2026-11-30", "2026-11-29"]
    assert page["next_offset"] == 3
    rest = client.get("/v1/entries?limit=3&offset=3", headers=alice).json()
    assert [e["id"] for e in rest["entries"]] == [ids["2026-11-28"]] and rest["next_offset"] is None
    ranged = client.get("/v1/entries?since=2026-11-29&until=2026-11-30", headers=alice).json()
    assert [e["entry_date"] for e in ranged["entries"]] == ["2026-11-30", "2026-11-29"]
    r = client.get("/v1/entries?since=2026-12-01&until=2026-11-01", headers=alice)
    assert r.status_code == 422 and "after" in r.json()["detail"]


def test_another_members_entry_is_not_found(stack):
    client, alice, bob = stack
    entry = write(client, alice, "2026-12-01")
    assert client.get(f"/v1/entries/{entry['id']}", headers=bob).status_code == 404
    assert client.patch(f"/v1/entries/{entry['id']}", json={"text": "x"}, headers=bob).status_code == 404
    assert client.delete(f"/v1/entries/{entry['id']}", headers=bob).status_code == 404
    assert client.get("/v1/entries", headers=bob).json()["entries"] == []
    assert client.get(f"/v1/entries/{entry['id']}", headers=alice).status_code == 200


def test_text_limit_and_bad_input(stack):
    client, alice, _ = stack
    r = client.post("/v1/entries", json={"text": "a" * 101, "language": "en", "entry_date": "2026-12-01"},
                    headers=alice)
    assert r.status_code == 422 and "limit is 100" in r.json()["detail"]
    entry = write(client, alice, "2026-12-01")
    r = client.patch(f"/v1/entries/{entry['id']}", json={"text": "a" * 101}, headers=alice)
    assert r.status_code == 422 and "limit is 100" in r.json()["detail"]
    r = client.patch(f"/v1/entries/{entry['id']}", json={"text": None}, headers=alice)
    assert r.status_code == 422 and "cannot be cleared" in r.json()["detail"]
    r = client.post("/v1/entries", json={"text": "x", "language": "en", "entry_date": "yesterday"}, headers=alice)
    assert r.status_code == 422
    assert client.get("/v1/entries", headers={}).status_code == 401


def test_entry_points_only_at_own_voice_and_job(stack):
    client, alice, _ = stack
    r = client.post("/v1/entries", json={"text": "x", "language": "en", "entry_date": "2026-12-01",
                                         "voice_id": "0" * 32}, headers=alice)
    assert r.status_code == 404 and "voice" in r.json()["detail"]
    entry = write(client, alice, "2026-12-01")
    r = client.patch(f"/v1/entries/{entry['id']}", json={"last_job_id": "0" * 32}, headers=alice)
    assert r.status_code == 404 and "job" in r.json()["detail"]
