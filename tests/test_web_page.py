"""The household page as served: index at /, assets under /static/, strict security headers everywhere."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from jobs_fixtures import embedded_settings

from producer.api import create_app
from producer.web import STATIC_DIR
from shared.service import open_backend


@pytest.fixture
def client(tmp_path):
    settings = embedded_settings(tmp_path)
    return TestClient(create_app(settings, open_backend(settings, lambda _dispatch: None)))


def test_index_is_served_at_the_root_with_a_strict_policy(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/js/app.js">' in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"


def test_the_page_has_no_inline_script_and_no_remote_asset():
    for path in STATIC_DIR.rglob("*"):
        if path.suffix not in {".html", ".js", ".css"}:
            continue
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), f"inline script in {path}"
        assert not re.search(r"""(src|href)=["']https?://""", text), f"remote asset in {path}"
        assert not re.search(r"""(import\s.*from\s+|import\()\s*["']https?://""", text), f"remote module in {path}"


def test_assets_are_served_as_modules_with_the_same_headers(client):
    r = client.get("/static/js/app.js")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]
    assert r.headers["content-security-policy"].startswith("default-src 'self'")
    assert r.headers["cache-control"] == "no-cache"
    assert client.get("/static/app.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/js/nope.js").status_code == 404


def test_the_api_keeps_its_json_and_gets_the_headers_too(client):
    r = client.get("/healthz")
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-content-type-options"] == "nosniff"
    # Swagger's page loads its assets from a CDN: it keeps working without the page's policy.
    assert "content-security-policy" not in client.get("/docs").headers
