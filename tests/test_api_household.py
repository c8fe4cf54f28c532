"""/v1/household: the admin page's figures (members, their use of each quota) and invite links."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from jobs_fixtures import audio_bytes, embedded_settings

from producer.api import create_app
from shared import service
from shared.service import open_backend


@pytest.fixture
def stack(tmp_path):
    settings = embedded_settings(tmp_path, quota_chars_per_day=1234, flower_public_url="http://flower.lan:5555")
    backend = open_backend(settings, lambda _dispatch: None)
    _, admin = service.create_member(backend, "admin", admin=True)
    kid, kid_token = service.create_member(backend, "kid")
    return TestClient(create_app(settings, backend)), admin, kid, kid_token


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def test_admins_see_every_member_with_their_use_of_the_quotas(stack):
    client, admin, kid, kid_token = stack
    upload = client.post("/v1/voices", files={"audio": ("k.wav", audio_bytes(4.0))},
                         data={"transcript": "今天天气很好。", "language": "zh", "name": "k"}, headers=auth(kid_token))
    assert upload.status_code == 202, upload.text
    body = client.get("/v1/household", headers=auth(admin)).json()
    assert body["quotas"]["chars_per_day"] == 1234 and body["flower_url"] == "http://flower.lan:5555"
    assert [m["name"] for m in body["members"]] == ["admin", "kid"]
    kid_row = body["members"][1]
    assert kid_row["member_id"] == kid.id and kid_row["voices"] == 1 and kid_row["active_jobs"] == 1
    assert kid_row["storage_bytes"] == len(audio_bytes(4.0))


def test_members_who_are_not_admins_are_refused(stack):
    client, _, kid, kid_token = stack
    assert client.get("/v1/household", headers=auth(kid_token)).status_code == 403
    assert client.post(f"/v1/household/members/{kid.id}/invites", headers=auth(kid_token)).status_code == 403


def test_an_invite_link_from_the_admin_signs_the_member_in_once(stack):
    client, admin, kid, _ = stack
    made = client.post(f"/v1/household/members/{kid.id}/invites", headers=auth(admin))
    assert made.status_code == 201, made.text
    code = made.json()["invite_link"].split("#invite=", 1)[1]
    signed = client.post("/v1/sessions", json={"invite": code})
    assert signed.status_code == 201 and signed.json()["member"]["name"] == "kid"
    assert client.post("/v1/sessions", json={"invite": code}).status_code == 422
    assert client.post("/v1/household/members/nobody/invites", headers=auth(admin)).status_code == 404
