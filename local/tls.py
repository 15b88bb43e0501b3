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

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class LocalTls:
    """A certificate (also its own CA bundle) and the server context that presents it."""

    cert_path: Path
    context: ssl.SSLContext


def make_local_tls(directory: Path | None = None) -> LocalTls:
    """A new key and self-signed certificate for 127.0.0.1/localhost, valid for a day."""
    folder = directory or Path(tempfile.mkdtemp(prefix="streamer-local-tls-"))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "streamer-local")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return LocalTls(cert_path, context)
