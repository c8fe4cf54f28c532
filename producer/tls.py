"""HTTPS for the household network: a private certificate authority and a server certificate it signs.

Browsers allow microphone capture only in a secure context, so a phone on the LAN needs HTTPS.
Like mkcert, we make a small CA once (kept in the data folder) and sign a short-lived server
certificate for this machine's names and addresses with it: a phone trusts the CA once, and the
server certificate can be reissued (a new address, expiry) without asking the phone again.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 397  # browsers refuse server certificates valid for longer than 398 days
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    ca: Path | None  # None for the user's own certificate


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not the EC key EchoDiary made; delete the folder to start a new CA")
    return key


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "EchoDiary"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _make_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"EchoDiary household CA ({socket.gethostname()})")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5)).not_valid_after(_now() + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write_key(folder / "ca-key.pem", key)
    (folder / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = folder / "ca.pem", folder / "ca-key.pem"
    if cert_path.is_file() and key_path.is_file():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if cert.not_valid_after_utc - RENEW_BEFORE > _now():
            return cert, _load_key(key_path)
    return _make_ca(folder)


def local_addresses() -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) this machine answers to on the household network."""
    host = socket.gethostname()
    names = sorted({"localhost", host, f"{host}.local"})
    ips = {"127.0.0.1", "::1"}
    try:
        ips.update(info[4][0] for info in socket.getaddrinfo(host, None))
    except OSError:
        pass
    try:  # the address of the route out: no packet is sent by a UDP connect
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            ips.add(probe.getsockname()[0])
    except OSError:
        pass
    return names, sorted(ip.split("%")[0] for ip in ips)


def _alt_names(names: list[str], ips: list[str]) -> x509.SubjectAlternativeName:
    return x509.SubjectAlternativeName([x509.DNSName(n) for n in names]
                                       + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips])


def _covers(cert: x509.Certificate, names: list[str], ips: list[str]) -> bool:
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    have_ips = {str(ip) for ip in alt.get_values_for_type(x509.IPAddress)}
    have_names = set(alt.get_values_for_type(x509.DNSName))
    return set(ips) <= have_ips and set(names) <= have_names


def _issue(folder: Path, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
           names: list[str], ips: list[str]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(names[0] if names else "echodiary"))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(min(_now() + dt.timedelta(days=SERVER_DAYS), ca.not_valid_after_utc))
            .add_extension(_alt_names(names, ips), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write_key(folder / "server-key.pem", key)
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure_certificate(folder: Path, names: list[str] | None = None, ips: list[str] | None = None) -> TlsFiles:
    """The household CA and a server certificate for this machine, made or renewed as needed.

    The server certificate is reissued when it nears expiry, when the CA changed, or when this
    machine has a name or address it does not cover; the CA is kept, so phones keep trusting it.
    """
    if names is None or ips is None:
        found_names, found_ips = local_addresses()
        names, ips = names or found_names, ips or found_ips
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    ca, ca_key = _ca(folder)
    server = folder / "server.pem"
    current = x509.load_pem_x509_certificate(server.read_bytes()) if server.is_file() else None
    if (current is None or current.issuer != ca.subject
            or current.not_valid_after_utc - RENEW_BEFORE < _now() or not _covers(current, names, ips)):
        _issue(folder, ca, ca_key, names, ips)
    return TlsFiles(cert=server, key=folder / "server-key.pem", ca=folder / "ca.pem")


def fingerprint(cert_path: Path) -> str:
    """SHA-256 fingerprint, as phones show it when asked to trust a certificate."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def own_certificate(cert: Path, key: Path) -> TlsFiles:
    """The user's own certificate and key, checked to exist and to match before the server starts."""
    for path in (cert, key):
        if not path.is_file():
            raise FileNotFoundError(2, "No such file", str(path))
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    ours = private.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    theirs = loaded.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    if ours != theirs:
        raise ValueError(f"the key {key} does not belong to the certificate {cert}")
    return TlsFiles(cert=cert, key=key, ca=None)
