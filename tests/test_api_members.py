"""Household admin through the API: revoke and remove members; only admins, never oneself."""

from __future__ import annotations

from fastapi.testclient import TestClient
from jobs_fixtures import embedded_settings

from producer.api import create_app
from shared import service


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_admin_manages_members(tmp_data_dir):
    app = create_app(embedded_settings(tmp_data_dir))
    backend = app.state.backend
    _, admin_token = service.create_member(backend, "ann", admin=True)
    bob, bob_token = service.create_member(backend, "bob")
    with TestClient(app) as client:
        assert client.post(f"/v1/members/{bob.id}/revoke", headers=_bearer(bob_token)).status_code == 403
        assert client.delete(f"/v1/members/{bob.id}", headers=_bearer(bob_token)).status_code == 403

        revoked = client.post(f"/v1/members/{bob.id}/revoke", headers=_bearer(admin_token))
        assert revoked.status_code == 200, revoked.text
        new_token = revoked.json()["token"]
        assert client.get("/v1/members/me", headers=_bearer(bob_token)).status_code == 401
        assert client.get("/v1/members/me", headers=_bearer(new_token)).json()["name"] == "bob"

        ann_id = client.get("/v1/members/me", headers=_bearer(admin_token)).json()["member_id"]
        assert client.delete(f"/v1/members/{ann_id}", headers=_bearer(admin_token)).status_code == 409
        assert client.post(f"/v1/members/{ann_id}/revoke", headers=_bearer(admin_token)).status_code == 409
        assert client.delete(f"/v1/members/{'f' * 32}", headers=_bearer(admin_token)).status_code == 404
        assert client.delete("/v1/members/not-an-id", headers=_bearer(admin_token)).status_code == 404

        removed = client.delete(f"/v1/members/{bob.id}", headers=_bearer(admin_token))
        assert removed.status_code == 200 and removed.json()["rows"] >= 2
        household = client.get("/v1/household", headers=_bearer(admin_token)).json()
        assert [m["name"] for m in household["members"]] == ["ann"]
        assert client.get("/v1/members/me", headers=_bearer(new_token)).status_code == 401
