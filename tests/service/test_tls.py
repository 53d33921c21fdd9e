"""The TLS holder: TLS 1.2 minimum, checked loading, and the context swap new connections see."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme
from cryptography import x509

from injector.service.dev import make_certificates
from injector.service.tls import (
    MINIMUM_VERSION,
    TLSError,
    TLSHolder,
    build,
    load_context,
    read_pair,
)
from tests.service.support import KubeletVolume

NAME = "sidecar-injector.sidecar-injector.svc"


def write_pair(ca: trustme.CA, directory: Path, name: str = NAME) -> tuple[Path, Path]:
    leaf = ca.issue_cert(name)
    cert, key = directory / "tls.crt", directory / "tls.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    return cert, key


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, name: str = NAME) -> str:
    """Run a TLS handshake in memory; the certificate subject the client verified."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client_side = client.wrap_bio(c_in, c_out, server_hostname=name)
    server_side = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        pending = False
        for side in (client_side, server_side):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pending = True
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if not pending:
            break
    cert = client_side.getpeercert()
    assert cert is not None
    return str(cert["subjectAltName"])


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_serves_tls_1_2_at_least(tmp_path: Path) -> None:
    cert, key = write_pair(trustme.CA(), tmp_path)
    holder = TLSHolder(cert, key)
    assert holder.serving.minimum_version == MINIMUM_VERSION == ssl.TLSVersion.TLSv1_2
    assert holder.current.minimum_version == ssl.TLSVersion.TLSv1_2
    assert load_context(cert, key).minimum_version == ssl.TLSVersion.TLSv1_2


def test_expiry_is_the_certificates(tmp_path: Path) -> None:
    cert, key = write_pair(trustme.CA(), tmp_path)
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    assert TLSHolder(cert, key).expires_at == parsed.not_valid_after_utc.timestamp()


def test_new_connections_get_the_swapped_context(tmp_path: Path) -> None:
    old_ca, new_ca = trustme.CA(), trustme.CA()
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    holder = TLSHolder(*write_pair(old_ca, tmp_path / "old"))
    handshake(holder.serving, trusting(old_ca))
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(holder.serving, trusting(new_ca))
    holder.swap(build(read_pair(*write_pair(new_ca, tmp_path / "new"))))
    handshake(holder.serving, trusting(new_ca))
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(holder.serving, trusting(old_ca))


def test_a_bad_pair_never_reaches_the_serving_context(tmp_path: Path) -> None:
    ca = trustme.CA()
    holder = TLSHolder(*write_pair(ca, tmp_path))
    trustme.CA().issue_cert(NAME).private_key_pem.write_to_path(str(tmp_path / "tls.key"))
    with pytest.raises(TLSError, match="cannot load TLS certificate"):
        build(read_pair(tmp_path / "tls.crt", tmp_path / "tls.key"))
    handshake(holder.serving, trusting(ca))


def test_a_pair_is_read_through_the_kubelet_symlinks(tmp_path: Path) -> None:
    """Loading uses the resolved `..<timestamp>/` files: the bytes that were read."""
    first, second = trustme.CA().issue_cert(NAME), trustme.CA().issue_cert(NAME)
    volume = KubeletVolume(tmp_path / "tls")
    volume.write(
        {"tls.crt": first.cert_chain_pems[0].bytes(), "tls.key": first.private_key_pem.bytes()}
    )
    pair = read_pair(volume.root / "tls.crt", volume.root / "tls.key")
    assert pair.cert.parent.name.startswith("..")
    assert pair.cert.parent.name != "..data"
    assert pair.cert_pem == first.cert_chain_pems[0].bytes()
    volume.write(
        {"tls.crt": second.cert_chain_pems[0].bytes(), "tls.key": second.private_key_pem.bytes()}
    )
    assert read_pair(volume.root / "tls.crt", volume.root / "tls.key") != pair


@pytest.mark.parametrize("problem", ["mismatched", "missing", "garbage"])
def test_unusable_pairs_are_refused(tmp_path: Path, problem: str) -> None:
    cert, key = write_pair(trustme.CA(), tmp_path)
    if problem == "mismatched":
        trustme.CA().issue_cert(NAME).private_key_pem.write_to_path(str(key))
    elif problem == "missing":
        key.unlink()
    else:
        cert.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    with pytest.raises(TLSError, match=r"cannot (load|read) TLS certificate"):
        TLSHolder(cert, key)


def test_dev_certificates_verify_for_localhost_and_the_service_name(tmp_path: Path) -> None:
    ca_pem, cert_pem, key_pem = make_certificates("127.0.0.1")
    (tmp_path / "tls.crt").write_bytes(cert_pem)
    (tmp_path / "tls.key").write_bytes(key_pem)
    server = load_context(tmp_path / "tls.crt", tmp_path / "tls.key")
    client = ssl.create_default_context(cadata=ca_pem.decode())
    client.verify_flags |= ssl.VERIFY_X509_STRICT
    for name in ("localhost", NAME, "127.0.0.1"):
        assert "localhost" in handshake(server, client, name)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server, client, "example.com")
