"""Operators' changes while the webhook serves: a ConfigMap edit, a broken edit and its fix,
a certificate renewal. None needs a restart, none breaks injection."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from e2e.apiserver import review
from e2e.expect import agreed, container, digests, status
from e2e.local import LocalInjector
from e2e.metrics import labels
from e2e.pods import APPS, as_admitted, bare
from e2e.target import Target, wait_until

SHIPPER = "log-shipper.yaml"
IMAGE = "fluent/fluent-bit:3.1.4"
RELOADS = "sidecar_injector_config_reloads_total"
TLS_RELOADS = "sidecar_injector_tls_reloads_total"
LOAD_ERRORS = "sidecar_injector_template_load_errors"


def served(target: Target) -> dict[str, str]:
    """Template digests every replica serves."""
    return digests(target.webhook.debug_templates())


def served_everywhere(target: Target) -> dict[str, str] | None:
    """Template digests once every replica serves the same; None until then."""
    return agreed(target.webhook.debug_templates())


def changed_everywhere(target: Target, shipper_digest: str) -> bool:
    """Every replica serves the same log-shipper, and not the one of `shipper_digest`."""
    now = served_everywhere(target)
    return now is not None and now["log-shipper"] != shipper_digest


def shipper_image(target: Target) -> str:
    """The log-shipper image a new Pod gets now."""
    pod = target.apiserver.admit(bare("reload"), APPS).stored
    image: str = container(pod, "log-shipper")["image"]
    return image


def replaced(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


@pytest.fixture
def original(target: Target) -> Iterator[dict[str, str]]:
    """The templates as installed; put back (and served again) after the test."""
    data = target.webhook.templates()
    digests_before = served(target)
    yield data
    target.webhook.edit_templates(data)
    wait_until(lambda: served_everywhere(target) == digests_before, target.webhook, "restore")


def test_a_configmap_edit_reaches_new_pods(target: Target, original: dict[str, str]) -> None:
    before = served(target)["log-shipper"]
    edited = {**original, SHIPPER: replaced(original[SHIPPER], IMAGE, "fluent/fluent-bit:3.2.0")}
    target.webhook.edit_templates(edited)
    took = wait_until(
        lambda: shipper_image(target) == "fluent/fluent-bit:3.2.0", target.webhook, "edit"
    )
    assert took <= target.webhook.reload_bound
    wait_until(lambda: changed_everywhere(target, before), target.webhook, "every replica")
    after = served(target)["log-shipper"]
    for _ in range(3):
        pod = target.apiserver.admit(bare("edited"), APPS).stored
        assert container(pod, "log-shipper")["image"] == "fluent/fluent-bit:3.2.0"
        assert status(pod)["templates"] == [{"name": "log-shipper", "digest": after}]


def test_a_broken_edit_keeps_the_last_good_version_until_fixed(
    target: Target, original: dict[str, str]
) -> None:
    webhook = target.webhook
    if target.mode == "cluster" and not isinstance(webhook, LocalInjector):
        pytest.skip(
            "the chart's validating webhook refuses a broken edit at kubectl time "
            "(test_validate.py); here the last good version is what serves after one got by"
        )
    good = served(target)
    start = webhook.metrics()
    # One edit breaks log-shipper (an unknown key) and changes trace-agent.
    broken = {
        **original,
        SHIPPER: original[SHIPPER] + "sidekicks: []\n",
        "trace-agent.yaml": replaced(original["trace-agent.yaml"], "0.110.0", "0.111.0"),
    }
    webhook.edit_templates(broken)
    wait_until(
        lambda: all("log-shipper" in r["errors"] for r in webhook.debug_templates()),
        webhook,
        "the load error shown in /debug/templates",
    )
    for replica in webhook.debug_templates():
        assert any(SHIPPER in e and "sidekicks" in e for e in replica["errors"]["log-shipper"])
        shipper = next(t for t in replica["templates"] if t["name"] == "log-shipper")
        assert (shipper["digest"], shipper["stale"]) == (good["log-shipper"], True)
    assert served(target)["trace-agent"] != good["trace-agent"]
    assert shipper_image(target) == IMAGE, "the last good log-shipper keeps serving"
    pod = target.apiserver.admit(bare("traced", "trace-agent"), APPS).stored
    assert container(pod, "trace-agent")["image"] == "otel/opentelemetry-collector:0.111.0"
    broken_scrape = webhook.metrics()
    assert broken_scrape.get(LOAD_ERRORS) == 1
    reloads = broken_scrape.delta(start, RELOADS)
    assert set(reloads) == {labels(result="failure")}, reloads

    fixed = {**broken, SHIPPER: replaced(original[SHIPPER], IMAGE, "fluent/fluent-bit:3.2.1")}
    webhook.edit_templates(fixed)
    wait_until(lambda: not any(r["errors"] for r in webhook.debug_templates()), webhook, "the fix")
    assert shipper_image(target) == "fluent/fluent-bit:3.2.1"
    fixed_scrape = webhook.metrics()
    assert fixed_scrape.get(LOAD_ERRORS) == 0
    assert set(fixed_scrape.delta(broken_scrape, RELOADS)) == {labels(result="success")}
    last_success = "sidecar_injector_config_last_reload_success_timestamp_seconds"
    assert fixed_scrape.get(last_success) > broken_scrape.get(last_success)


def test_a_certificate_renewal_needs_no_restart(target: Target) -> None:
    webhook = target.webhook
    replicas = len(webhook.debug_templates())
    before = webhook.metrics()
    webhook.renew_certificate()
    wait_until(
        lambda: (
            webhook.metrics().delta(before, TLS_RELOADS).get(labels(result="success"), 0)
            >= replicas
        ),
        webhook,
        "the renewed certificate loaded",
    )
    assert labels(result="failure") not in webhook.metrics().delta(before, TLS_RELOADS)
    pod = target.apiserver.admit(bare("renewed"), APPS).stored
    assert container(pod, "log-shipper")["image"] == IMAGE


def test_after_a_renewal_new_connections_verify_and_old_ones_keep_working(
    local: LocalInjector, request: pytest.FixtureRequest
) -> None:
    """The apiserver's open keep-alive connection must survive; its new ones get the new leaf,
    verified against the unchanged caBundle and the service name."""
    body = orjson.dumps(review(as_admitted(bare("keep-alive"), APPS)))
    old = local.connect()
    request.addfinalizer(old.close)
    assert old.mutate(body).status == 200
    old_serial = old.peer_serial()
    local.renew_certificate()
    new_serial = local.leaf.cert.serial_number

    def new_connection_gets_new_leaf() -> bool:
        fresh = local.connect()
        try:
            return fresh.peer_serial() == new_serial and fresh.mutate(body).status == 200
        finally:
            fresh.close()

    wait_until(new_connection_gets_new_leaf, local, "a new connection served the new leaf")
    for _ in range(3):
        assert old.mutate(body).status == 200
    assert old.peer_serial() == old_serial, "the same connection, not a new one"
    scrape = local.metrics()
    assert scrape.get("sidecar_injector_tls_certificate_expiry_timestamp_seconds") == (
        local.leaf.not_after
    )
