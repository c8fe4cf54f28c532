"""`echodiary serve --tls`: a household CA, a server certificate it signs, and HTTPS that phones can trust."""

from __future__ import annotations

import datetime as dt
import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from jobs_fixtures import free_port, wait_until

from producer import tls


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_server_certificate_is_signed_by_the_household_ca_for_our_addresses(tmp_path):
    files = tls.ensure_certificate(tmp_path / "tls", names=["localhost", "box.local"], ips=["127.0.0.1", "192.168.1.7"])
    ca, server = _load(files.ca), _load(files.cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ca.public_key().verify(server.signature, server.tbs_certificate_bytes, ec.ECDSA(server.signature_hash_algorithm))
    alt = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(alt.get_values_for_type(x509.DNSName)) == {"localhost", "box.local"}
    assert {str(ip) for ip in alt.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "192.168.1.7"}
    assert server.not_valid_after_utc - server.not_valid_before_utc <= dt.timedelta(days=398)
    assert (files.key.stat().st_mode & 0o077) == 0  # the keys are private to the owner


def test_kept_across_starts_and_reissued_for_a_new_address_under_the_same_ca(tmp_path):
    folder = tmp_path / "tls"
    first = tls.ensure_certificate(folder, names=["localhost"], ips=["127.0.0.1"])
    ca_bytes, cert_bytes = first.ca.read_bytes(), first.cert.read_bytes()
    again = tls.ensure_certificate(folder, names=["localhost"], ips=["127.0.0.1"])
    assert again.cert.read_bytes() == cert_bytes and again.ca.read_bytes() == ca_bytes
    moved = tls.ensure_certificate(folder, names=["localhost"], ips=["127.0.0.1", "10.0.0.9"])
    assert moved.cert.read_bytes() != cert_bytes
    assert moved.ca.read_bytes() == ca_bytes  # phones that trust the CA keep trusting the new certificate


def test_own_certificate_must_match_its_key(tmp_path):
    a = tls.ensure_certificate(tmp_path / "a", names=["localhost"], ips=["127.0.0.1"])
    b = tls.ensure_certificate(tmp_path / "b", names=["localhost"], ips=["127.0.0.1"])
    assert tls.own_certificate(a.cert, a.key).ca is None
    with pytest.raises(ValueError, match="does not belong"):
        tls.own_certificate(a.cert, b.key)


@pytest.fixture
def tls_server(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHODIARY_")}
    env.update(ECHODIARY_DATA_DIR=str(tmp_path / "data"), ECHODIARY_MODELS_DIR=str(tmp_path / "models"))
    proc = subprocess.Popen([sys.executable, "-m", "producer.cli", "serve", "--tls", "--port", str(port)],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ca = tmp_path / "data" / "tls" / "ca.pem"
    context = None

    def up() -> bool:
        nonlocal context
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read())
        if not ca.is_file():
            return False
        context = ssl.create_default_context(cafile=str(ca))
        try:
            return httpx.get(f"https://localhost:{port}/healthz", verify=context, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(up, timeout=90, interval=0.3, what="the TLS server")
        yield port, context, env, tmp_path
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_tls_is_trusted_with_the_ca_and_sets_secure_cookies(tls_server):
    port, context, env, tmp_path = tls_server
    with pytest.raises(httpx.TransportError):  # without the household CA the certificate is not trusted
        httpx.get(f"https://localhost:{port}/healthz", timeout=5)
    with pytest.raises(httpx.TransportError):  # and it does not speak plain HTTP
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    token = subprocess.run([sys.executable, "-m", "producer.cli", "members", "add", "dana"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    reply = httpx.post(f"https://localhost:{port}/v1/sessions", json={"token": token}, verify=context, timeout=10)
    assert reply.status_code == 201, reply.text
    cookie = reply.headers["set-cookie"].lower()
    assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
