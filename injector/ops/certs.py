"""Whether a webhook's caBundle lets the apiserver trust the serving certificate: the chain,
the name the apiserver dials, and the expiry — the classic webhook outage, caught early."""

from __future__ import annotations

import base64
import binascii
import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature


@dataclass(frozen=True)
class Finding:
    """What is wrong (nothing: trusted, covers the name, valid now) and how long is left."""

    problems: tuple[str, ...]
    expires: datetime.datetime | None = None

    def days_left(self, now: datetime.datetime) -> int | None:
        return None if self.expires is None else (self.expires - now).days


def decode_bundle(value: str) -> bytes:
    """A caBundle as stored: base64 of PEM; plain PEM is taken too."""
    if "-----BEGIN" in value:
        return value.encode()
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""


def verify(bundle: bytes, chain: bytes, name: str, now: datetime.datetime) -> Finding:
    """Check the serving `chain` (PEM, leaf first) against the CA `bundle` (PEM) for `name`."""
    try:
        cas = x509.load_pem_x509_certificates(bundle) if bundle.strip() else []
    except ValueError:
        cas = []
    if not cas:
        return Finding(("the caBundle holds no certificate",))
    try:
        certificates = x509.load_pem_x509_certificates(chain)
    except ValueError as exc:
        return Finding((f"the serving certificate cannot be read: {exc}",))
    leaf = certificates[0]
    expires = leaf.not_valid_after_utc
    problems = []
    if not _issued_by(leaf, certificates[1:], cas):
        problems.append(
            "the caBundle does not verify the serving certificate (issued by "
            f"{leaf.issuer.rfc4514_string()}; the bundle holds "
            f"{', '.join(ca.subject.rfc4514_string() for ca in cas)})"
        )
    if not any(covers(pattern, name) for pattern in _dns_names(leaf)):
        problems.append(
            f"the serving certificate does not cover {name} (it covers "
            f"{', '.join(_dns_names(leaf)) or 'no DNS name'})"
        )
    if expires <= now:
        problems.append(f"the serving certificate expired on {expires:%Y-%m-%d %H:%M} UTC")
    elif leaf.not_valid_before_utc > now:
        problems.append(f"the serving certificate is not valid before {leaf.not_valid_before_utc}")
    return Finding(tuple(problems), expires)


def covers(pattern: str, name: str) -> bool:
    """Whether a certificate name covers `name`: case-insensitive, and a leading `*.`
    standing for exactly one label (RFC 6125)."""
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if not pattern.startswith("*."):
        return pattern == name
    first, _, rest = name.partition(".")
    return bool(first) and rest == pattern[2:]


def _issued_by(
    leaf: x509.Certificate, intermediates: list[x509.Certificate], cas: list[x509.Certificate]
) -> bool:
    """Whether a chain of signatures leads from `leaf` to one of `cas`."""
    current = leaf
    for _ in range(len(intermediates) + 1):
        for candidate in (*cas, *intermediates):
            if candidate.subject != current.issuer or not _signed(current, candidate):
                continue
            if candidate in cas:
                return True
            current = candidate
            break
        else:
            return False
    return False


def _signed(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _dns_names(certificate: x509.Certificate) -> list[str]:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*names.get_values_for_type(x509.DNSName)] + [
        str(address) for address in names.get_values_for_type(x509.IPAddress)
    ]
