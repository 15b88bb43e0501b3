"""A throw-away TLS identity for the gateway's ``https://`` @connections endpoint.

Chalice's ``app.websocket_api`` posts to ``https://{domain}/{stage}`` (its endpoint
template is fixed to https, and botocore gives an explicit ``endpoint_url`` precedence
over ``AWS_ENDPOINT_URL_*``), so an unmodified app can only reach a local
``@connections`` API over TLS. The gateway therefore also listens with TLS, with a
certificate made here for 127.0.0.1 and localhost, and the app is told to trust it
through botocore's public ``AWS_CA_BUNDLE`` setting. Nothing here is a secret worth
keeping: the key lives in a temporary directory for one run.

Why hand-written: no library ships "a self-signed certificate for loopback"; this is
the few calls of ``cryptography`` (a dependency of moto) it takes.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class LocalTls:
    """The CA bundle to trust (``AWS_CA_BUNDLE``) and the server context to present."""

    cert_path: Path
    context: ssl.SSLContext


def make_local_tls(directory: Path | None = None) -> LocalTls:
    """A new throw-away CA and a server certificate it signs for 127.0.0.1/localhost,
    valid for a day. Two certificates, not one self-signed: strict verification
    (Python 3.13's default, and OpenSSL 3 on some builds) refuses a CA certificate as a
    server's own and wants key identifiers and key usages on both."""
    folder = directory or Path(tempfile.mkdtemp(prefix="streamer-local-tls-"))
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "streamer-local CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (
        _builder(name, ca_name, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return LocalTls(ca_path, context)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: Any,
             now: datetime.datetime) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)))
