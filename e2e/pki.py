"""Certificates as cert-manager issues them from the chart's rendered `Certificate`s.

The chart's chain is a self-signed Issuer → a CA `Certificate` (isCA) → a CA Issuer → the
serving `Certificate`. `CAIssuer` plays the CA Issuer: it holds the CA key and signs leaves with
the dnsNames, usages, key algorithm and duration of a `Certificate` spec, and writes the Secret
keys cert-manager writes (`tls.crt`, `tls.key`, `ca.crt`). cainjector copies the CA's `ca.crt`
into the webhook's caBundle, so that is the bundle the apiserver-like client trusts.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

_CURVES: dict[int, ec.EllipticCurve] = {256: ec.SECP256R1(), 384: ec.SECP384R1()}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}
_CLOCK_SKEW = datetime.timedelta(minutes=5)

_KEY_USAGES = {
    "digital signature": "digital_signature",
    "key encipherment": "key_encipherment",
    "cert sign": "key_cert_sign",
    "crl sign": "crl_sign",
}
_EXTENDED_USAGES = {
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
}


@dataclass(frozen=True)
class Issued:
    """One issued certificate, as the Secret cert-manager writes for it."""

    cert: x509.Certificate
    key: PrivateKey
    ca: x509.Certificate

    @property
    def secret(self) -> dict[str, str]:
        """The Secret's data: `tls.crt` (leaf then CA), `tls.key`, `ca.crt`."""
        return {
            "tls.crt": _pem(self.cert) + _pem(self.ca),
            "tls.key": self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
            "ca.crt": _pem(self.ca),
        }

    @property
    def not_after(self) -> float:
        return self.cert.not_valid_after_utc.timestamp()


class CAIssuer:
    """The chart's CA: created from the CA `Certificate` spec, then signing serving certs."""

    def __init__(self, ca_spec: Mapping[str, Any]) -> None:
        assert ca_spec.get("isCA") is True, "the CA Certificate must have isCA: true"
        self.key = new_key(ca_spec.get("privateKey") or {})
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_spec["commonName"])])
        now = _now()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + duration(ca_spec.get("duration", "2160h")))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(["digital signature", "key encipherment", "cert sign"]), True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), False)
            .sign(self.key, _digest(self.key))
        )

    @property
    def bundle(self) -> bytes:
        """The caBundle cainjector puts in the webhook configuration."""
        return _pem(self.cert).encode()

    def issue(self, spec: Mapping[str, Any], extra_names: Sequence[str] = ()) -> Issued:
        """A new key and leaf for the `Certificate` spec (rotationPolicy Always: a new key on
        every issuance), valid from now for its duration."""
        key = new_key(spec.get("privateKey") or {})
        now = _now()
        usages = spec.get("usages") or ["digital signature", "key encipherment"]
        builder = (
            x509.CertificateBuilder()
            # cert-manager leaves the subject empty without commonName: the SANs carry the names.
            .subject_name(x509.Name([]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + duration(spec.get("duration", "2160h")))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(usages), critical=True)
            .add_extension(_san([*spec.get("dnsNames", []), *extra_names]), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
        )
        extended = [_EXTENDED_USAGES[u] for u in usages if u in _EXTENDED_USAGES]
        if extended:
            builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
        return Issued(builder.sign(self.key, _digest(self.key)), key, self.cert)


def new_key(private_key: Mapping[str, Any]) -> PrivateKey:
    """A key as cert-manager's `privateKey` (algorithm, size) asks for; its default is RSA 2048."""
    algorithm = private_key.get("algorithm", "RSA")
    if algorithm == "ECDSA":
        return ec.generate_private_key(_CURVES[int(private_key.get("size", 256))])
    if algorithm == "Ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    assert algorithm == "RSA", f"unknown privateKey.algorithm {algorithm}"
    return rsa.generate_private_key(65537, int(private_key.get("size", 2048)))


def duration(text: str) -> datetime.timedelta:
    """A Go duration as cert-manager takes it (`2160h`, `1h30m`)."""
    parts = _DURATION.findall(text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return datetime.timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _key_usage(usages: Sequence[str]) -> x509.KeyUsage:
    flags = dict.fromkeys(_KEY_USAGES.values(), False)
    flags.update({_KEY_USAGES[u]: True for u in usages if u in _KEY_USAGES})
    return x509.KeyUsage(
        content_commitment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
        **flags,
    )


def _digest(key: PrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)
