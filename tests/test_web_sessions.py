"""Web sign-in over the real app: cookie flags, invites used once, expiry, CSRF on cookie changes, Bearer unchanged."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from jobs_fixtures import embedded_settings
from sqlalchemy import select, update
from typer.testing import CliRunner

from producer.api import create_app
from shared import service, web_sessions
from shared.service import open_backend
from shared.settings import get_settings
from shared.tables import WebSession

ENTRY = {"text": "今天很好。", "language": "zh", "entry_date": "2026-12-01"}


@pytest.fixture
def stack(tmp_path):
    settings = embedded_settings(tmp_path)
    backend = open_backend(settings, lambda _dispatch: None)
    member, token = service.create_member(backend, "alice", admin=True)
    return TestClient(create_app(settings, backend), base_url="https://testserver"), backend, member, token


def sign_in(client, **body):
    r = client.post("/v1/sessions", json=body)
    assert r.status_code == 201, r.text
    return r


def test_cookie_flags_and_current_session(stack):
    client, _, _, token = stack
    r = sign_in(client, token=token)
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie
    assert f"{web_sessions.SESSION_COOKIE}=" in cookie
    current = client.get("/v1/sessions/current").json()
    assert current["csrf_token"] == r.json()["csrf_token"] and current["member"]["name"] == "alice"
    assert client.get("/v1/members/me").json()["name"] == "alice"


def test_plain_http_cookie_is_not_secure(tmp_path):
    settings = embedded_settings(tmp_path)
    backend = open_backend(settings, lambda _dispatch: None)
    _, token = service.create_member(backend, "bob")
    r = TestClient(create_app(settings, backend)).post("/v1/sessions", json={"token": token})
    assert r.status_code == 201 and "secure" not in r.headers["set-cookie"].lower()


def test_invite_works_once(stack):
    client, backend, member, _ = stack
    code = web_sessions.create_invite(backend, member.id)
    assert sign_in(client, invite=code).json()["member"]["name"] == "alice"
    r = TestClient(client.app, base_url="https://testserver").post("/v1/sessions", json={"invite": code})
    assert r.status_code == 422 and "already used" in r.json()["detail"]
    assert client.post("/v1/sessions", json={"token": "edy_wrong"}).status_code == 401
    assert client.post("/v1/sessions", json={}).status_code == 422


def test_cookie_changes_need_the_csrf_header(stack):
    client, _, _, token = stack
    csrf = sign_in(client, token=token).json()["csrf_token"]
    r = client.post("/v1/entries", json=ENTRY)
    assert r.status_code == 403 and "X-CSRF-Token" in r.json()["detail"]
    assert client.post("/v1/entries", json=ENTRY, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.post("/v1/entries", json=ENTRY, headers={"X-CSRF-Token": csrf}).status_code == 201
    assert client.get("/v1/entries").status_code == 200  # reads need no CSRF
    bearer = TestClient(client.app, base_url="https://testserver")
    r = bearer.post("/v1/entries", json=ENTRY, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201  # Bearer requests are unchanged: no CSRF


def test_expired_session_refused_and_sliding(stack):
    client, backend, _, token = stack
    sign_in(client, token=token)
    with backend.db.write() as session:
        session.exec(update(WebSession).values(expires_at=service.now() + 5))
    assert client.get("/v1/members/me").status_code == 200
    with backend.db.read() as session:
        (expires_at,) = session.exec(select(WebSession.expires_at)).one()
    assert expires_at > service.now() + backend.settings.web_session_ttl_s - 60
    with backend.db.write() as session:
        session.exec(update(WebSession).values(expires_at=service.now() - 1))
    r = client.get("/v1/members/me")
    assert r.status_code == 401 and "sign in again" in r.json()["detail"]


def test_sign_out(stack):
    client, _, _, token = stack
    csrf = sign_in(client, token=token).json()["csrf_token"]
    assert client.delete("/v1/sessions/current").status_code == 403
    assert client.delete("/v1/sessions/current", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert client.get("/v1/members/me").status_code == 401
    assert client.get("/v1/sessions/current").status_code == 401


def test_members_add_prints_an_invite_link(tmp_path, monkeypatch):
    from producer.cli import app

    monkeypatch.setenv("ECHODIARY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ECHODIARY_API_PUBLIC_URL", "https://diary.home:8443")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["members", "add", "carol"])
    assert result.exit_code == 0, result.output
    assert "https://diary.home:8443/#invite=" in result.output
    again = CliRunner().invoke(app, ["members", "invite", "carol"])
    assert again.exit_code == 0 and again.output.startswith("https://diary.home:8443/#invite=")
    assert CliRunner().invoke(app, ["members", "invite", "nobody"]).exit_code == 1
    get_settings.cache_clear()
