"""Serving TLS: a context built and checked from the cert/key files, swappable at run time."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


class TLSError(Exception):
    """The certificate or key cannot serve: unreadable, not PEM, or not a pair."""


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


def expiry(cert: Path) -> float:
    """Unix time at which the (first) certificate in the file expires."""
    try:
        parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise TLSError(f"cannot read TLS certificate {cert}: {exc}") from None
    return parsed.not_valid_after_utc.timestamp()


class TLSHolder:
    """Owns the context uvicorn serves with. That outer context never changes; its SNI callback
    (which runs for every handshake, with or without SNI) hands each new connection the current
    inner context, so a reload only has to replace `current`."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.cert = cert
        self.key = key
        self.current = load_context(cert, key)
        self.expires_at = expiry(cert)
        self.serving = load_context(cert, key)
        self.serving.sni_callback = self._select

    def _select(self, connection: ssl.SSLObject, server_name: str | None, _: Any) -> None:
        connection.context = self.current

    def swap(self, context: ssl.SSLContext, expires_at: float) -> None:
        """Serve `context` to new connections; open connections keep theirs."""
        self.current = context
        self.expires_at = expires_at

    def context_factory(self) -> Callable[[Any, Callable[[], ssl.SSLContext]], ssl.SSLContext]:
        """For uvicorn's `ssl_context_factory`: always the outer, reload-aware context."""
        return lambda _config, _default: self.serving
