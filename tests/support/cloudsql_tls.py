"""A CA and a server certificate like Cloud SQL's: the certificate names the instance, not
the IP, so clients verify the CA chain and not the host name (as in the cluster)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any


def tls_files(d: Path) -> dict[str, Path]:
    """Write {"ca", "cert", "key"} PEM files into `d` and return their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(signer, hashes.SHA256())
        )

    ca_key, srv_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = cert("Test Cloud SQL Server CA", ca_key, "Test Cloud SQL Server CA", ca_key, True)
    srv = cert("acme-ml-prod:zenml-mysql", srv_key, "Test Cloud SQL Server CA", ca_key, False)
    d.mkdir(parents=True, exist_ok=True)
    files = {"ca": d / "server-ca.pem", "cert": d / "server-cert.pem", "key": d / "server-key.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        srv_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return files
