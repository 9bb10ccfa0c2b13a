"""A throwaway certificate authority and server certificates for tests, in PEM files.

Made with ``cryptography`` (a dev-only dependency: the product never issues certificates).
Keys are P-256 EC keys, unencrypted PKCS#8 in files only their owner can read (0600); Kafka
reads such a file as a ``PEM`` keystore, librdkafka reads the CA file as ``ssl.ca.location``.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Long enough for any test session; short enough that a leaked file soon means nothing.
_VALIDITY = datetime.timedelta(days=7)
# Tolerates a clock a little behind the one that issued the certificate.
_BACKDATE = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA whose key lives only in memory; ``certificate_file`` is what clients trust."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    certificate_file: Path

    def issue_server_keystore(self, path: Path, dns_name: str) -> Path:
        """Write a PEM keystore for a server known as ``dns_name`` only: key, then chain.

        The certificate names no IP address, so a client that reaches the server by address
        fails hostname verification.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(dns_name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        chain = _certificate_pem(certificate) + _certificate_pem(self.certificate)
        write_owner_only(path, _key_pem(key) + chain)
        return path


def create_authority(directory: Path, name: str) -> CertificateAuthority:
    """A new self-signed CA named ``name``; its certificate is written to ``directory/NAME.pem``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = _name(name)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    certificate_file = directory / f"{name}.pem"
    certificate_file.write_bytes(_certificate_pem(certificate))
    return CertificateAuthority(key, certificate, certificate_file)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def write_owner_only(path: Path, content: bytes) -> None:
    """Create ``path`` readable by its owner only, from the first byte on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)
