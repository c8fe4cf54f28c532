"""Optional C2PA manifest for WAV, MP3 and FLAC, signed offline with a locally made ES256 chain.

The manifest says the audio was created by a trained algorithm (IPTC digitalSourceType
trainedAlgorithmicMedia), that it carries our watermark (a ``c2pa.watermarked`` action with a
soft binding naming the algorithm and key id, never the payload) and repeats the AIGC label.
It is written last: it hashes the whole file, so any later metadata edit breaks it, while the
watermark survives everything the hash does not.

The chain (a private CA and the server's signing certificate) is made in the data folder at first
use. Readers report it as ``signingCredential.untrusted`` until the CA is added to their trust list.
"""

from __future__ import annotations

import base64
import datetime
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from engine.errors import EngineError
from engine.watermark import metadata
from engine.watermark.keys import _write_private
from engine.watermark.labels import AigcLabel

MIME = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac"}
SIGNER_DIR = Path("watermark") / "c2pa"
SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
SOFT_BINDING_ALG = "org.echodiary.patchwork.1"


@dataclass(frozen=True)
class Signer:
    chain_pem: bytes  # signing certificate first, then the CA
    key_pem: bytes


def load_signer(data_dir: Path | str) -> Signer:
    """The server's C2PA signer, made in ``data_dir`` at first use."""
    folder = Path(data_dir) / SIGNER_DIR
    chain, key = folder / "chain.pem", folder / "signer.key"
    if not (chain.exists() and key.exists()):
        made = make_signer()
        _write_private(key, made.key_pem.decode(), replace_existing=True)
        _write_private(chain, made.chain_pem.decode(), replace_existing=True)
    return Signer(chain.read_bytes(), key.read_bytes())


def make_signer(name: str = "EchoDiary") -> Signer:
    """A private ES256 CA and an end-entity certificate for signing (digitalSignature, emailProtection)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None,
             issuer_key: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
        subject_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject),
                                  x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)])
        usage = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                               "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"), False)
        usage.update({"key_cert_sign": True, "crl_sign": True} if ca else {"digital_signature": True})
        builder = (x509.CertificateBuilder().subject_name(subject_name).issuer_name(issuer or subject_name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=3650))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
                   .add_extension(x509.KeyUsage(**usage), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        if not ca:
            builder = (builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                       .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                      critical=False))
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, ee_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert(f"{name} local C2PA CA", ca_key, None, ca_key, ca=True)
    ee = cert(f"{name} server", ee_key, ca.subject, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    key_pem = ee_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return Signer(ee.public_bytes(pem) + ca.public_bytes(pem), key_pem)


def sign(data: bytes, signer: Signer, *, key_id: str | None = None, label: AigcLabel | None = None,
         title: str = "diary") -> bytes:
    """``data`` (WAV, MP3 or FLAC) with a signed C2PA manifest; ``key_id`` declares the watermark."""
    out = io.BytesIO()
    sign_stream(io.BytesIO(data), out, signer, key_id=key_id, label=label, title=title)
    return out.getvalue()


def sign_stream(source: BinaryIO, out: BinaryIO, signer: Signer, *, key_id: str | None = None,
                label: AigcLabel | None = None, title: str = "diary") -> None:
    """``sign`` from one seekable file to another: the stored file need not be in Python's memory.
    Limit: the SDK itself holds about twice the file while it signs (ops/bench/memory.py --c2pa:
    a 41.8 MiB WAV peaks about 85 MiB above the same render unsigned); we cannot bound that here."""
    import c2pa

    source.seek(0)
    fmt = metadata.detect_format(source.read(4096))
    source.seek(0)
    if fmt not in MIME:
        raise EngineError(f"C2PA manifests are written for WAV, MP3 and FLAC, not {fmt or 'this file'}")
    from importlib.metadata import version

    agent = {"name": "EchoDiary", "version": version("echodiary")}
    actions = [{"action": "c2pa.created", "digitalSourceType": SOURCE_TYPE, "softwareAgent": agent}]
    assertions: list[dict] = []
    if key_id is not None:
        actions.append({"action": "c2pa.watermarked", "parameters": {"description": "EchoDiary keyed audio watermark"}})
        assertions.append({"label": "c2pa.soft-binding", "data": {
            "alg": SOFT_BINDING_ALG, "blocks": [{"scope": {}, "value": base64.b64encode(key_id.encode()).decode()}]}})
    if label is not None:
        assertions.append({"label": "org.echodiary.aigc", "data": {"AIGC": label.fields()}})
    manifest = {"claim_generator_info": [agent], "title": title,
                "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": actions}}, *assertions]}
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, signer.chain_pem, signer.key_pem, None)
    with c2pa.Signer.from_info(info) as native, c2pa.Builder(manifest) as builder:
        builder.sign(native, MIME[fmt], source, out)


def read(data: bytes) -> dict | None:
    """{validation_state, status codes, actions, aigc} of the active manifest, or None without one."""
    import c2pa

    fmt = metadata.detect_format(data)
    if fmt not in MIME:
        return None
    reader = c2pa.Reader.try_create(MIME[fmt], io.BytesIO(data))
    if reader is None:
        return None
    with reader:
        doc = json.loads(reader.json())
        state = reader.get_validation_state()
    active = doc["manifests"][doc["active_manifest"]]
    by_label = {a["label"]: a["data"] for a in active.get("assertions", [])}
    actions = by_label.get("c2pa.actions.v2", by_label.get("c2pa.actions", {})).get("actions", [])
    status = doc.get("validation_status") or []
    return {"validation_state": state, "status": [s.get("code") for s in status],
            "actions": [a.get("action") for a in actions], "aigc": by_label.get("org.echodiary.aigc", {}).get("AIGC")}
