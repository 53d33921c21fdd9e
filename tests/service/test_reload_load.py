"""Templates and certificates rotating under a steady stream of reviews: nothing fails, no mix."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import orjson

from injector.service.sample import review
from tests.service.process import SERVICE_NAME, Connection, Service, running
from tests.service.support import Mounts, secret_files, stamped, stamps, trusting

CLIENTS = 4
RECONNECT_EVERY = 150
"""Requests per connection: new handshakes keep happening while certificates rotate."""
MIN_REQUESTS = 3000
MAX_REQUESTS_PER_CLIENT = 10_000
DEADLINE_SECONDS = 30.0
TEMPLATE_ROTATIONS = 8
CERT_ROTATIONS = 4
ROTATE_EVERY_SECONDS = 0.5
BODY = orjson.dumps(review("alpha,beta"))


def generation(number: int) -> dict[str, str]:
    """Both templates stamped with the same number: an answer mixing two sets shows it."""
    return {"alpha.yaml": stamped("alpha", number), "beta.yaml": stamped("beta", number)}


@dataclass
class Client:
    """One keep-alive connection at a time, sending reviews until told to stop."""

    service: Service
    mounts: Mounts
    stop: threading.Event
    seen: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    connections: int = 0

    def run(self) -> None:
        connection = None
        try:
            while not self.stop.is_set() and len(self.seen) < MAX_REQUESTS_PER_CLIENT:
                if connection is None or len(self.seen) % RECONNECT_EVERY == 0:
                    if connection is not None:
                        connection.close()
                    connection = Connection.opened(self.service.port, trusting(self.mounts.ca))
                    self.connections += 1
                self._one(connection)
        except Exception as exc:
            self.failures.append(repr(exc))
        finally:
            if connection is not None:
                connection.close()

    def _one(self, connection: Connection) -> None:
        reply = connection.mutate(BODY)
        response = reply.json()["response"] if reply.status == 200 else {}
        stamped_versions = set(stamps(response).values()) if response.get("allowed") else set()
        if len(stamped_versions) != 1 or len(stamps(response)) != 2:
            self.failures.append(f"{reply.status}: {reply.body[:300]!r}")
            self.seen.append(0)
            return
        self.seen.append(int(stamped_versions.pop()))


def test_rotations_under_load(mounts: Mounts) -> None:
    mounts.templates.write(generation(1))
    with running(mounts.args()) as service:
        stop = threading.Event()
        clients = [Client(service, mounts, stop) for _ in range(CLIENTS)]
        threads = [threading.Thread(target=c.run) for c in clients]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        try:
            for number in range(2, TEMPLATE_ROTATIONS + 2):
                time.sleep(ROTATE_EVERY_SECONDS)
                mounts.templates.write(generation(number))
                if number % 2 == 0 and number // 2 <= CERT_ROTATIONS:
                    mounts.secret.write(secret_files(mounts.ca.issue_cert(SERVICE_NAME)))
            last = TEMPLATE_ROTATIONS + 1
            while time.monotonic() - started < DEADLINE_SECONDS and not (
                sum(len(c.seen) for c in clients) >= MIN_REQUESTS
                and all(c.seen and c.seen[-1] == last for c in clients)
            ):
                time.sleep(0.05)
        finally:
            stop.set()
            for thread in threads:
                thread.join(DEADLINE_SECONDS)
        took = time.monotonic() - started

        total = sum(len(c.seen) for c in clients)
        failures = [f for c in clients for f in c.failures]
        print(
            f"\nunder load: {total} reviews over {sum(c.connections for c in clients)} "
            f"connections in {took:.1f} s, {len(failures)} failed, {TEMPLATE_ROTATIONS} template "
            f"and {CERT_ROTATIONS} certificate rotations"
        )
        assert failures == []
        assert total >= MIN_REQUESTS
        for client in clients:
            assert client.seen == sorted(client.seen), "a client never goes back to an older set"
            assert client.seen[-1] == last
        assert set().union(*(c.seen for c in clients)) <= set(range(1, last + 1))
        assert service.metric("sidecar_injector_config_reloads_total", result="failure") == 0
        assert service.metric("sidecar_injector_tls_reloads_total", result="failure") == 0
        assert service.metric("sidecar_injector_tls_reloads_total", result="success") == (
            CERT_ROTATIONS
        )
