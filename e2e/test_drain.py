"""SIGTERM as the kubelet sends it during a rollout, with the chart's drain settings: readiness
drops at once, in-flight and new requests are still answered, then a clean exit."""

from __future__ import annotations

import base64
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path

import orjson
import pytest

from e2e.apiserver import review
from e2e.chart import Release
from e2e.local import LocalInjector
from e2e.pods import APPS, as_admitted, bare

BODY = orjson.dumps(review(as_admitted(bare("draining"), APPS)))


@pytest.fixture
def injector(release: Release, tmp_path: Path) -> Iterator[LocalInjector]:
    """A process of its own: this test stops it."""
    started = LocalInjector.start(release, tmp_path)
    try:
        yield started
    finally:
        started.service.stop()


def patched(reply_body: bytes) -> bool:
    response = orjson.loads(reply_body)["response"]
    return response["allowed"] and bool(orjson.loads(base64.b64decode(response["patch"])))


def test_sigterm_drains_then_exits_cleanly(injector: LocalInjector) -> None:
    delay = float(injector.release.args["--shutdown-delay"])
    graceful = float(injector.release.args["--graceful-timeout"])
    assert delay > 1, "the chart's drain period"
    with ExitStack() as stack:
        idle = stack.enter_context(closing(injector.connect()))
        assert idle.mutate(BODY).status == 200  # now an idle keep-alive connection
        in_flight = stack.enter_context(closing(injector.connect()))
        in_flight.start(BODY, sent=len(BODY) // 2)

        injector.service.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        while injector.readiness() != 503:
            assert time.monotonic() - signalled < 1, "readiness still passes after SIGTERM"
            time.sleep(0.02)
        assert injector.ops("/healthz").status_code == 200

        in_flight.send(BODY[len(BODY) // 2 :])
        reply = in_flight.finish()
        assert reply.status == 200 and patched(reply.body)
        fresh = stack.enter_context(closing(injector.connect()))
        for connection in (idle, fresh):
            reply = connection.mutate(BODY)
            assert reply.status == 200 and patched(reply.body)
            # Told to reconnect, so the apiserver moves to a ready replica.
            assert reply.headers["connection"] == "close"
        assert time.monotonic() - signalled < delay, "all answered within the drain period"

    code = injector.service.proc.wait(timeout=delay + graceful + 5)
    took = time.monotonic() - signalled
    assert code == 0
    assert delay - 0.5 <= took <= delay + graceful, f"exited after {took:.1f} s"
    assert len(injector.service.events("shutdown_started")) == 1
    assert injector.service.events("stopped")
