"""/metrics scraped before and after known admissions: the deltas are exactly what happened."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass

import orjson

from e2e.apiserver import review
from e2e.expect import status
from e2e.local import LocalInjector
from e2e.metrics import Samples, labels
from e2e.pods import APPS, EXCLUDED, Obj, as_admitted, bare, recreate
from e2e.target import Admission, Target, require_native_sidecars

REQUESTS = "sidecar_injector_admission_requests_total"
INJECTIONS = "sidecar_injector_injections_total"
DURATION = "sidecar_injector_admission_duration_seconds"


@dataclass(frozen=True)
class Case:
    """One Pod creation and what the service must count for it."""

    pod: Obj
    outcome: str
    reason: str
    injected: tuple[str, ...] = ()
    namespace: str = APPS
    dry_run: bool = False
    selected: bool = True
    """Whether the chart's namespaceSelector and matchConditions send it to the webhook; the
    local client sends every Pod, so there the service's own skip rules are counted."""


LOUD = {"log-shipper.logLevel": "loud"}
CASES = (
    Case(bare("m-one"), "injected", "ok", ("log-shipper",)),
    Case(
        bare("m-two", "log-shipper,trace-agent"), "injected", "ok", ("log-shipper", "trace-agent")
    ),
    Case(bare("m-dry", "envoy-proxy"), "injected", "ok", ("envoy-proxy",), dry_run=True),
    Case(bare("m-default", "true"), "injected", "ok", ("log-shipper",)),
    Case(bare("m-typo", "log-shiper"), "denied", "template_not_found"),
    Case(bare("m-clash", "log-shipper,e2e-clash"), "denied", "conflict"),
    Case(bare("m-param", "log-shipper", LOUD), "denied", "invalid_parameter"),
    Case(bare("m-false", "false"), "skipped", "not_requested", selected=False),
    Case(bare("m-absent", None), "skipped", "not_requested", selected=False),
    Case(bare("m-excluded"), "skipped", "excluded_namespace", namespace=EXCLUDED, selected=False),
)


def expected_requests(cases: list[Case], mode: str) -> dict[frozenset[tuple[str, str]], float]:
    counted = Counter(
        (case.outcome, case.reason) for case in cases if case.selected or mode == "local"
    )
    return {labels(outcome=o, reason=r): float(n) for (o, r), n in counted.items()}


def admit(target: Target, case: Case) -> Admission:
    admission = target.apiserver.admit(case.pod, case.namespace, dry_run=case.dry_run)
    assert admission.allowed == (case.outcome != "denied"), admission.message
    if case.injected:
        assert [t["name"] for t in status(admission.stored)["templates"]] == list(case.injected)
    return admission


def test_admission_metrics_count_exactly_what_happened(target: Target) -> None:
    require_native_sidecars(target)  # m-dry injects envoy-proxy
    before = target.webhook.metrics()
    first, *_ = [admit(target, case) for case in CASES]
    again = Case(recreate(first.stored, "m-again"), "skipped", "already_injected")
    admit(target, again)
    after = target.webhook.metrics()

    cases = [*CASES, again]
    assert after.delta(before, REQUESTS) == expected_requests(cases, target.mode)
    injected = Counter(name for case in cases for name in case.injected)
    assert after.delta(before, INJECTIONS) == {
        labels(template=name): float(count) for name, count in injected.items()
    }
    answered = sum(expected_requests(cases, target.mode).values())
    assert after.delta(before, f"{DURATION}_count") == {frozenset(): answered}
    # Every answer well inside the apiserver's timeout: all of them in the 2.5 s bucket.
    assert after.delta(before, f"{DURATION}_bucket")[labels(le="2.5")] == answered


def test_every_outcome_and_reason_is_exposed_from_the_start(target: Target) -> None:
    series = target.webhook.metrics().series(REQUESTS)
    pairs = {(dict(s)["outcome"], dict(s)["reason"]) for s in series}
    for pair in [("injected", "ok"), ("skipped", "not_requested"), ("denied", "conflict")]:
        assert pair in pairs
    assert {outcome for outcome, _ in pairs} == {"injected", "skipped", "denied", "error"}


def test_gauges_describe_the_loaded_templates_and_certificate(target: Target) -> None:
    scrape = target.webhook.metrics()
    now = time.time()
    assert scrape.get("sidecar_injector_templates_loaded") == len(target.webhook.templates())
    assert scrape.get("sidecar_injector_template_load_errors") == 0
    assert 0 < scrape.get("sidecar_injector_config_last_reload_success_timestamp_seconds") <= now
    assert scrape.get("sidecar_injector_tls_certificate_expiry_timestamp_seconds") > now + 86400


def test_the_expiry_gauge_is_the_served_certificates(local: LocalInjector) -> None:
    expiry = local.metrics().get("sidecar_injector_tls_certificate_expiry_timestamp_seconds")
    assert expiry == local.leaf.not_after


def test_refused_requests_are_counted_as_errors(local: LocalInjector) -> None:
    """Requests that never became a review: HTTP 4xx, counted, never a 500."""
    apiserver = local.apiserver()
    good = orjson.dumps(review(as_admitted(bare("m-http"), APPS)))
    before = local.metrics()
    try:
        assert apiserver.post(good, content_type="text/plain").status_code == 415
        assert apiserver.post(b"{not json").status_code == 400
        assert apiserver.post(orjson.dumps({"kind": "Pod"})).status_code == 400
    finally:
        apiserver.close()
    assert local.metrics().delta(before, REQUESTS) == {
        labels(outcome="error", reason="unsupported_media_type"): 1.0,
        labels(outcome="error", reason="invalid_request"): 2.0,
    }


def test_one_log_line_per_review(local: LocalInjector) -> None:
    """The canonical JSON line: uid, namespace, pod, templates, outcome; never the pod spec."""
    apiserver = local.apiserver()
    uids = {str(uuid.uuid4()): bare(f"log-{n}") for n in range(3)}
    try:
        for uid, pod in uids.items():
            apiserver.call(review(as_admitted(pod, APPS), uid=uid))
    finally:
        apiserver.close()
    last = list(uids)[-1]
    assert local.service.stdout.wait_for(lambda text: last in text, timeout=5) is not None
    output = local.service.stdout.text().splitlines()
    lines = {uid: [line for line in output if uid in line] for uid in uids}
    for uid, pod in uids.items():
        assert len(lines[uid]) == 1, f"{len(lines[uid])} log lines for {uid}"
        event = orjson.loads(lines[uid][0])
        assert event["event"] == "admission"
        assert (event["namespace"], event["pod"]) == (APPS, pod["metadata"]["name"])
        assert (event["outcome"], event["injected"]) == ("injected", ["log-shipper"])
        assert "nginx" not in lines[uid][0], "the pod spec is never logged"


def test_a_scrape_parses_into_known_families(local: LocalInjector) -> None:
    scrape: Samples = local.metrics()
    for name in ("sidecar_injector_config_reloads_total", "sidecar_injector_tls_reloads_total"):
        assert {dict(s)["result"] for s in scrape.series(name)} == {"success", "failure"}
