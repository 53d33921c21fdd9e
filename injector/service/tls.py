"""Serving TLS: a context built and checked from the cert/key files, swappable at run time."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


class TLSError(Exception):
    """The certificate or key cannot serve: unreadable, not PEM, or not a pair."""


@dataclass(frozen=True)
class KeyPair:
    """The certificate and key as read at one moment. The paths are resolved through the
    kubelet's `..data` symlink to files in a `..<timestamp>/` directory, which the kubelet never
    rewrites: loading from them reads these same bytes, even if `..data` moves meanwhile."""

    cert: Path
    key: Path
    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class Served:
    """A context ready to serve, and when its certificate expires."""

    context: ssl.SSLContext
    expires_at: float


def read_pair(cert: Path, key: Path) -> KeyPair:
    """Resolve and read both files; a cheap snapshot that changes whenever either file does."""
    try:
        real_cert, real_key = Path(os.path.realpath(cert)), Path(os.path.realpath(key))
        return KeyPair(real_cert, real_key, real_cert.read_bytes(), real_key.read_bytes())
    except OSError as exc:
        raise TLSError(f"cannot read TLS certificate {cert} or key {key}: {exc}") from None


def build(pair: KeyPair) -> Served:
    """A fresh context for `pair`, checked to hold a matching certificate and key."""
    return Served(load_context(pair.cert, pair.key), expiry(pair.cert_pem, pair.cert))


def load_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A fresh server context from the files. Never load into the live context: a bad pair
    would leave it broken for every later handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise TLSError(f"cannot load TLS certificate {cert} with key {key}: {exc}") from None
    return context


def expiry(pem: bytes, source: Path) -> float:
    """Unix time at which the (first) certificate in `pem`, read from `source`, expires."""
    try:
        parsed = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise TLSError(f"cannot read TLS certificate {source}: {exc}") from None
    return parsed.not_valid_after_utc.timestamp()


class TLSHolder:
    """Owns the context uvicorn serves with. That outer context never changes; its SNI callback
    (which runs for every handshake, with or without SNI) hands each new connection the current
    inner context, so a reload only has to replace `current`."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.pair = read_pair(cert, key)
        """What the first context was built from: where the watcher starts comparing."""
        served = build(self.pair)
        self.current = served.context
        self.expires_at = served.expires_at
        self.serving = _outer_context()
        self.serving.sni_callback = self._select

    def _select(self, connection: ssl.SSLObject, server_name: str | None, _: Any) -> None:
        connection.context = self.current

    def swap(self, served: Served) -> None:
        """Serve `served` to new connections; open connections keep theirs."""
        self.current = served.context
        self.expires_at = served.expires_at

    def context_factory(self) -> Callable[[Any, Callable[[], ssl.SSLContext]], ssl.SSLContext]:
        """For uvicorn's `ssl_context_factory`: always the outer, reload-aware context."""
        return lambda _config, _default: self.serving


def _outer_context() -> ssl.SSLContext:
    """The context every handshake starts on. It holds no certificate: the SNI callback always
    switches the connection to the current inner one before a certificate is chosen."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    context.set_alpn_protocols(["http/1.1"])
    return context
