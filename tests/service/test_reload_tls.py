"""Certificate hot reload in the real process: cert-manager renewals through a kubelet volume."""

from __future__ import annotations

import datetime
import functools
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import trustme

from injector.service.sample import review
from tests.service.process import SERVICE_NAME, Connection, Service, local_args, running
from tests.service.support import Mounts, secret_files, trusting

BODY = orjson.dumps(review())
EXPIRY = "sidecar_injector_tls_certificate_expiry_timestamp_seconds"
RELOADS = "sidecar_injector_tls_reloads_total"
WAIT_SECONDS = 5.0


def leaf(ca: trustme.CA, days: int) -> tuple[trustme.LeafCert, float]:
    """A serving certificate valid for `days`, and its expiry as a Unix time."""
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    not_after = now + datetime.timedelta(days=days)
    return ca.issue_cert(SERVICE_NAME, not_after=not_after), not_after.timestamp()


def connects(service: Service, ca: trustme.CA) -> bool:
    """Whether a new connection that trusts only `ca` verifies the server and is answered."""
    try:
        connection = Connection.opened(service.port, trusting(ca))
    except ssl.SSLCertVerificationError:
        return False
    try:
        return connection.mutate(BODY).status == 200
    finally:
        connection.close()


def wait_until(check: Callable[[], bool], timeout: float = WAIT_SECONDS) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout
        time.sleep(0.02)
    return time.monotonic() - started


def test_rotation_bad_pairs_and_open_connections(mounts: Mounts) -> None:
    mounts.templates.write({})
    with running(mounts.args()) as service:
        old = Connection.opened(service.port, trusting(mounts.ca))
        assert old.mutate(BODY).status == 200
        socket_before = old.sock

        # cert-manager renews with a new CA: new connections get it, the open one keeps working.
        second_ca = trustme.CA()
        second, second_expiry = leaf(second_ca, 30)
        mounts.secret.write(secret_files(second))
        wait_until(lambda: connects(service, second_ca))
        assert not connects(service, mounts.ca)
        assert old.mutate(BODY).status == 200
        assert old.sock is socket_before
        assert service.metric(EXPIRY) == second_expiry
        assert service.metric(RELOADS, result="success") == 1
        assert service.events("tls_reloaded")

        # A mismatched pair is refused; the serving certificate stays.
        stranger = trustme.CA().issue_cert(SERVICE_NAME)
        mounts.secret.write(
            {
                "tls.crt": secret_files(stranger)["tls.crt"],
                "tls.key": secret_files(second)["tls.key"],
            }
        )
        wait_until(lambda: service.metric(RELOADS, result="failure") == 1)
        assert connects(service, second_ca)
        assert service.metric(EXPIRY) == second_expiry
        failed = service.events("tls_reload_failed")
        assert len(failed) == 1
        assert "cannot load TLS certificate" in failed[0]["error"]

        # A half-written certificate is refused too.
        third_ca = trustme.CA()
        third, third_expiry = leaf(third_ca, 60)
        files = secret_files(third)
        mounts.secret.write({**files, "tls.crt": files["tls.crt"][: len(files["tls.crt"]) // 2]})
        wait_until(lambda: service.metric(RELOADS, result="failure") == 2)
        assert connects(service, second_ca)
        assert not connects(service, third_ca)

        # The complete pair then serves; the first connection never noticed any of it.
        mounts.secret.write(files)
        wait_until(lambda: connects(service, third_ca))
        assert service.metric(EXPIRY) == third_expiry
        assert service.metric(RELOADS, result="success") == 2
        assert old.mutate(BODY).status == 200
        assert old.sock is socket_before
        old.close()


def test_a_writer_that_replaces_one_file_at_a_time(mounts: Mounts, tmp_path: Path) -> None:
    """Plain files rewritten in place, certificate first: the debounce waits for the key."""
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    first = secret_files(mounts.ca.issue_cert(SERVICE_NAME))
    cert.write_bytes(first["tls.crt"])
    key.write_bytes(first["tls.key"])
    mounts.templates.write({})
    args = local_args(
        f"--templates-dir={mounts.templates.root}", f"--tls-cert={cert}", f"--tls-key={key}"
    )
    with running(args) as service:
        for round_ in range(3):
            ca = trustme.CA()
            files = secret_files(ca.issue_cert(SERVICE_NAME))
            cert.write_bytes(files["tls.crt"])
            time.sleep(0.02)
            key.write_bytes(files["tls.key"])
            wait_until(functools.partial(connects, service, ca))
            assert service.metric(RELOADS, result="success") == round_ + 1
        assert service.metric(RELOADS, result="failure") == 0


@pytest.mark.parametrize("missing", ["tls.key", "tls.crt"])
def test_a_missing_file_keeps_the_serving_pair(mounts: Mounts, missing: str) -> None:
    mounts.templates.write({})
    with running(mounts.args()) as service:
        files = secret_files(trustme.CA().issue_cert(SERVICE_NAME))
        del files[missing]
        mounts.secret.write(files)
        wait_until(lambda: service.metric(RELOADS, result="failure") == 1)
        assert connects(service, mounts.ca)
        assert "cannot read TLS certificate" in service.events("tls_reload_failed")[0]["error"]
