"""SIGTERM in the real process: readiness drops first, requests finish, idle TLS never holds it."""

from __future__ import annotations

import signal
import time

import httpx
import orjson

from injector.service.sample import review
from tests.service.process import Connection, Service, running
from tests.service.support import Mounts, stamped, trusting

BODY = orjson.dumps(review("alpha"))
DELAY = 1.5
GRACE = 8.0
HOLD_SECONDS = 1.0
"""How long the in-flight request keeps the stopping server waiting for the rest of its body."""


def ready(service: Service) -> int:
    return httpx.get(f"http://127.0.0.1:{service.metrics_port}/readyz", timeout=5).status_code


def test_sigterm_with_idle_and_in_flight_connections(mounts: Mounts) -> None:
    mounts.templates.write({"alpha.yaml": stamped("alpha", 1)})
    args = mounts.args(f"--shutdown-delay={DELAY}", f"--graceful-timeout={GRACE}")
    with running(args) as service:
        context = trusting(mounts.ca)
        idle = [Connection.opened(service.port, context) for _ in range(4)]
        for connection in idle:
            assert connection.mutate(BODY).status == 200
        in_flight = Connection.opened(service.port, context)
        assert ready(service) == 200

        signalled = time.monotonic()
        service.proc.send_signal(signal.SIGTERM)
        while ready(service) != 503:
            assert time.monotonic() - signalled < DELAY / 2
            time.sleep(0.02)

        # Draining: still answered, and told to reconnect (to a ready replica).
        reply = idle[0].mutate(BODY)
        assert reply.status == 200
        assert reply.headers["connection"] == "close"

        # A request that is in flight when the servers stop still gets its answer.
        in_flight.start(BODY, sent=len(BODY) // 2)
        assert service.stdout.wait_for(lambda line: '"event":"stopping"' in line, DELAY + 2)
        assert time.monotonic() - signalled >= DELAY
        time.sleep(HOLD_SECONDS)
        assert service.proc.poll() is None, "the stop waits for the request"
        in_flight.send(BODY[len(BODY) // 2 :])
        reply = in_flight.finish()
        assert reply.status == 200
        assert reply.json()["response"]["allowed"] is True

        # Idle keep-alive TLS connections (never answering close_notify) do not hold the exit.
        assert service.proc.wait(DELAY + GRACE + 2) == 0
        took = time.monotonic() - signalled
        print(f"\nSIGTERM to exit 0: {took:.2f} s (delay {DELAY} s, held {HOLD_SECONDS} s)")
        assert took < DELAY + HOLD_SECONDS + GRACE / 2
        assert service.events("closing_idle_connections")
        assert "graceful shutdown exceeded" not in service.stdout.text()
        assert service.events("stopped")
        for connection in [*idle, in_flight]:
            connection.close()


def test_second_signal_skips_the_drain(mounts: Mounts) -> None:
    mounts.templates.write({})
    with running(mounts.args("--shutdown-delay=60", f"--graceful-timeout={GRACE}")) as service:
        idle = Connection.opened(service.port, trusting(mounts.ca))
        assert idle.mutate(orjson.dumps(review(""))).status == 200
        signalled = time.monotonic()
        service.proc.send_signal(signal.SIGTERM)
        assert service.stdout.wait_for(lambda line: "shutdown_started" in line, 5)
        service.proc.send_signal(signal.SIGTERM)
        assert service.proc.wait(GRACE) == 0
        assert time.monotonic() - signalled < 3
        idle.close()
