"""Template hot reload in the real process: kubelet-style ConfigMap edits, answers and metrics."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from injector.service.sample import review
from tests.service.process import Connection, Service, running
from tests.service.support import KubeletVolume, Mounts, stamped, stamps, trusting

BAD_NAME = "description: broken\ncontainers:\n  - name: Not_A_Name\n    image: busybox\n"
"""Valid YAML, invalid template: the error names the file, the field and line 3."""
SWAPS = 24
WAIT_SECONDS = 5.0


@pytest.fixture
def service(mounts: Mounts) -> Iterator[Service]:
    mounts.templates.write({"alpha.yaml": stamped("alpha", 1)})
    with running(mounts.args()) as started:
        yield started


@pytest.fixture
def connection(mounts: Mounts, service: Service) -> Iterator[Connection]:
    opened = Connection.opened(service.port, trusting(mounts.ca))
    yield opened
    opened.close()


def ask(connection: Connection, inject: str) -> dict[str, Any]:
    reply = connection.mutate(orjson.dumps(review(inject)))
    assert reply.status == 200, reply.body
    response: dict[str, Any] = reply.json()["response"]
    return response


def wait_for(connection: Connection, inject: str, done: Callable[[dict[str, Any]], bool]) -> float:
    """Ask until an answer satisfies `done`; seconds it took."""
    started = time.monotonic()
    while not done(response := ask(connection, inject)):
        assert time.monotonic() - started < WAIT_SECONDS, response
        time.sleep(0.005)
    return time.monotonic() - started


def showing(**versions: int) -> Callable[[dict[str, Any]], bool]:
    """Whether an answer carries exactly these template versions."""
    expected = {name: str(version) for name, version in versions.items()}
    return lambda response: stamps(response) == expected


def reloads(service: Service, result: str) -> float | None:
    return service.metric("sidecar_injector_config_reloads_total", result=result)


def gauges(service: Service) -> tuple[float | None, float | None]:
    return (
        service.metric("sidecar_injector_templates_loaded"),
        service.metric("sidecar_injector_template_load_errors"),
    )


def last_success(service: Service) -> float:
    value = service.metric("sidecar_injector_config_last_reload_success_timestamp_seconds")
    assert value is not None
    return value


def debug(service: Service) -> dict[str, Any]:
    answer = httpx.get(f"http://127.0.0.1:{service.metrics_port}/debug/templates", timeout=5)
    document: dict[str, Any] = answer.json()
    return document


def test_add_change_break_fix_remove(
    mounts: Mounts, service: Service, connection: Connection
) -> None:
    write = mounts.templates.write
    assert stamps(ask(connection, "alpha")) == {"alpha": "1"}
    assert (reloads(service, "success"), reloads(service, "failure")) == (0, 0)

    # Add a template.
    write({"alpha.yaml": stamped("alpha", 1), "beta.yaml": stamped("beta", 1)})
    wait_for(connection, "beta", lambda r: r["allowed"])
    assert stamps(ask(connection, "alpha,beta")) == {"alpha": "1", "beta": "1"}
    assert gauges(service) == (2, 0)
    assert reloads(service, "success") == 1

    # Change one.
    write({"alpha.yaml": stamped("alpha", 2), "beta.yaml": stamped("beta", 1)})
    wait_for(connection, "alpha", showing(alpha=2))
    assert reloads(service, "success") == 2
    succeeded = last_success(service)

    # Break alpha while beta changes: alpha keeps its last good version, beta updates.
    write({"alpha.yaml": BAD_NAME, "beta.yaml": stamped("beta", 2)})
    wait_for(connection, "beta", showing(beta=2))
    assert stamps(ask(connection, "alpha,beta")) == {"alpha": "2", "beta": "2"}
    assert reloads(service, "failure") == 1
    assert gauges(service) == (2, 1)
    shown = debug(service)
    assert shown["errors"]["alpha"] == [
        "alpha.yaml:3: containers[0].name: container name 'Not_A_Name' must be a literal "
        "DNS-1123 label (lower-case letters, digits, '-'; no expressions)"
    ]
    assert {t["name"]: t["stale"] for t in shown["templates"]} == {"alpha": True, "beta": False}
    assert shown["broken"] == []
    failed = service.events("template_load_failed")[-1]
    assert failed["template"] == "alpha"
    assert failed["serving"] == "previous version"
    assert failed["errors"][0] | {"message": ""} == {
        "file": "alpha.yaml",
        "line": 3,
        "field": "containers[0].name",
        "message": "",
    }
    reloaded = service.events("templates_reloaded")[-1]
    assert (reloaded["level"], reloaded["changed"], reloaded["stale"]) == (
        "warning",
        ["beta"],
        ["alpha"],
    )
    assert last_success(service) == succeeded

    # Fix it: the error is cleared.
    write({"alpha.yaml": stamped("alpha", 3), "beta.yaml": stamped("beta", 2)})
    wait_for(connection, "alpha", showing(alpha=3))
    assert gauges(service) == (2, 0)
    assert debug(service)["errors"] == {}
    assert reloads(service, "success") == 3
    assert service.events("templates_reloaded")[-1]["fixed"] == ["alpha"]
    assert last_success(service) > succeeded

    # Remove beta from the ConfigMap: it is gone.
    write({"alpha.yaml": stamped("alpha", 3)})
    wait_for(connection, "beta", lambda r: not r["allowed"])
    message = ask(connection, "beta")["status"]["message"]
    assert message == "template 'beta' not found; available: alpha"
    assert gauges(service) == (1, 0)
    assert service.events("templates_reloaded")[-1]["removed"] == ["beta"]

    # A template whose first version is broken is denied with its load error.
    write({"alpha.yaml": stamped("alpha", 3), "gamma.yaml": BAD_NAME})
    wait_for(connection, "gamma", lambda r: "failed to load" in r["status"]["message"])
    message = ask(connection, "gamma")["status"]["message"]
    assert "template 'gamma' failed to load and has no previous good version" in message
    assert "gamma.yaml:3: containers[0].name:" in message
    assert debug(service)["broken"] == ["gamma"]
    assert stamps(ask(connection, "alpha")) == {"alpha": "3"}
    assert (reloads(service, "success"), reloads(service, "failure")) == (4, 2)
    assert service.proc.poll() is None


def test_unreadable_directory_keeps_the_catalog(
    mounts: Mounts, service: Service, connection: Connection
) -> None:
    """The mount disappearing (or becoming unreadable) is a failed reload, reported once."""
    mounts.templates.root.rename(mounts.templates.root.with_name("moved"))
    deadline = time.monotonic() + WAIT_SECONDS
    while reloads(service, "failure") != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert stamps(ask(connection, "alpha")) == {"alpha": "1"}
    time.sleep(0.6)
    assert reloads(service, "failure") == 1, "the same problem is counted once"
    assert "cannot read --templates-dir" in service.events("templates_reload_failed")[0]["error"]
    mounts.templates.root.with_name("moved").rename(mounts.templates.root)
    mounts.templates.write({"alpha.yaml": stamped("alpha", 2)})
    wait_for(connection, "alpha", showing(alpha=2))


def test_an_emptied_directory_is_refused_and_everything_keeps_serving(
    mounts: Mounts, service: Service, connection: Connection
) -> None:
    mounts.templates.write({})
    deadline = time.monotonic() + WAIT_SECONDS
    while reloads(service, "failure") != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert stamps(ask(connection, "alpha")) == {"alpha": "1"}
    refused = service.events("templates_reload_refused")[0]
    assert refused["reason"] == "the edit removes every template (alpha); at least one must stay"
    mounts.templates.write({"alpha.yaml": stamped("alpha", 2)})
    wait_for(connection, "alpha", showing(alpha=2))


def test_swap_to_first_answer_using_the_new_template(
    mounts: Mounts, service: Service, connection: Connection
) -> None:
    took = []
    for version in range(2, 2 + SWAPS):
        switched = mounts.templates.write({"alpha.yaml": stamped("alpha", version)})
        wait_for(connection, "alpha", showing(alpha=version))
        took.append(time.monotonic() - switched)
    median, worst = statistics.median(took), max(took)
    print(
        f"\nswap to first new answer over {SWAPS} swaps: median {median:.3f} s, max {worst:.3f} s"
    )
    assert worst <= 2.0
    assert reloads(service, "success") == SWAPS


def test_a_replica_started_while_a_template_is_broken_serves_its_last_good_version(
    mounts: Mounts, tmp_path: Path
) -> None:
    """The restart the last-good ConfigMap exists for: alpha broken in the templates ConfigMap,
    its last good version in the last-good one, a broken copy of beta there too."""
    mounts.templates.write({"alpha.yaml": BAD_NAME, "beta.yaml": BAD_NAME})
    last_good = KubeletVolume(tmp_path / "last-good")
    last_good.write({"alpha.yaml": stamped("alpha", 7), "beta.yaml": "containers: 3\n"})
    with (
        running(mounts.args(f"--last-good-dir={last_good.root}")) as service,
        closing(Connection.opened(service.port, trusting(mounts.ca))) as connection,
    ):
        assert stamps(ask(connection, "alpha")) == {"alpha": "7"}
        denied = ask(connection, "beta")  # no good version anywhere: denied, as before
        assert denied["allowed"] is False
        assert "'beta' failed to load and has no previous good version" in str(denied)
        assert service.metric("sidecar_injector_templates_last_good") == 1
        shown = debug(service)
        assert {t["name"]: (t["stale"], t["lastGood"]) for t in shown["templates"]} == {
            "alpha": (True, True)
        }
        assert shown["broken"] == ["beta"]
        failed = {e["template"]: e for e in service.events("template_load_failed")}
        assert failed["alpha"]["serving"] == "last good version"
        assert failed["alpha"]["from"] == str(last_good.root)
        assert failed["alpha"]["digest"] == shown["templates"][0]["digest"]
        assert failed["beta"]["serving"] == "nothing (denied)"

        # Fixed in the templates ConfigMap: its version serves, the fallback is done with.
        mounts.templates.write({"alpha.yaml": stamped("alpha", 8)})
        wait_for(connection, "alpha", showing(alpha=8))
        assert service.metric("sidecar_injector_templates_last_good") == 0
        assert [t["lastGood"] for t in debug(service)["templates"]] == [False]
