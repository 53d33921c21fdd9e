"""--dev: a throwaway CA and serving certificate, the example templates, a ready curl command."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from injector.service.config import Config
from injector.service.sample import review

SERVICE_NAMES = ("localhost", "sidecar-injector.sidecar-injector.svc")
LOOPBACK = ("127.0.0.1", "::1")
VALIDITY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class DevSetup:
    """Files written for one dev-mode run, removed when it ends."""

    config: Config
    directory: Path
    ca_cert: Path
    sample: Path

    @classmethod
    @contextmanager
    def create(cls, config: Config) -> Iterator[DevSetup]:
        directory = Path(tempfile.mkdtemp(prefix="sidecar-injector-dev-"))
        try:
            yield cls.write(config, directory)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    @classmethod
    def write(cls, config: Config, directory: Path) -> DevSetup:
        ca_pem, cert_pem, key_pem = make_certificates(config.host)
        (directory / "ca.crt").write_bytes(ca_pem)
        (directory / "tls.crt").write_bytes(cert_pem)
        (directory / "tls.key").write_bytes(key_pem)
        (directory / "tls.key").chmod(0o600)
        sample = directory / "review.json"
        sample.write_bytes(orjson.dumps(review(), option=orjson.OPT_INDENT_2) + b"\n")
        dev_config = replace(config, tls_cert=directory / "tls.crt", tls_key=directory / "tls.key")
        return cls(dev_config, directory, directory / "ca.crt", sample)

    def announce(self, port: int, metrics_port: int, out: TextIO = sys.stderr) -> None:
        """What a human needs to try the webhook, on stderr (stdout is the log stream)."""
        host = _client_host(self.config.host)
        ca_bundle = base64.b64encode(self.ca_cert.read_bytes()).decode()
        out.write(
            "\nsidecar-injector dev mode (files in "
            f"{self.directory}, removed on exit)\n"
            f"  templates: {self.config.templates_dir}\n"
            f"  caBundle:  {ca_bundle}\n"
            f"  metrics:   http://{host}:{metrics_port}/metrics\n"
            "Post the sample AdmissionReview (a pod asking for log-shipper):\n"
            f"  curl -sS --cacert {self.ca_cert} -H 'Content-Type: application/json' "
            f"--data-binary @{self.sample} https://{host}:{port}/mutate\n\n"
        )
        out.flush()


def _client_host(bind: str) -> str:
    """Where a local client reaches the bind address (a name or IP the certificate covers)."""
    if bind in ("0.0.0.0", "127.0.0.1", "localhost"):
        return "127.0.0.1"
    if bind in ("::", "::1"):
        return "[::1]"
    return f"[{bind}]" if ":" in bind else bind


def make_certificates(host: str) -> tuple[bytes, bytes, bytes]:
    """PEM CA certificate, serving certificate (signed by it) and its key."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sidecar-injector dev CA")])
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        _builder(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sidecar-injector")]),
            ca_name,
            key.public_key(),
            now,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_alt_names(host)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pem = serialization.Encoding.PEM
    return ca.public_bytes(pem), leaf.public_bytes(pem), key_pem


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def _key_usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _alt_names(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVICE_NAMES]
    addresses = set(LOOPBACK)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host not in SERVICE_NAMES:
            names.append(x509.DNSName(host))
    else:
        if host not in ("0.0.0.0", "::"):
            addresses.add(host)
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in sorted(addresses)]
    return names
