"""POST /mutate in process: every outcome, every kind of bad request, metrics and the log line."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs

from injector.catalog import Catalog
from injector.errors import LoadError
from injector.loader import LoadResult
from injector.policy import Settings
from injector.service import admission
from injector.service.sample import UID
from tests.helpers import catalog as build_catalog
from tests.service.support import Harness, apply_patch, make_harness, sample, with_pod

pytestmark = pytest.mark.anyio


async def test_injects_and_the_patched_pod_is_valid(harness: Harness) -> None:
    document = sample("log-shipper")
    response = await harness.review(document)
    assert response["allowed"] is True
    assert response["auditAnnotations"] == {"injected-templates": "log-shipper"}
    assert "warnings" not in response
    pod = apply_patch(document["request"]["object"], response)
    assert [c["name"] for c in pod["spec"]["containers"]] == [
        "api",
        "statsd-exporter",
        "log-shipper",
    ]
    assert "sidecar-injector.io/status" in pod["metadata"]["annotations"]


async def test_patch_only_holds_add_operations_in_order(harness: Harness) -> None:
    response = await harness.review(sample("envoy-proxy,log-shipper,trace-agent"))
    ops = orjson.loads(base64.b64decode(response["patch"]))
    assert ops[-1]["path"] == "/metadata/annotations/sidecar-injector.io~1status"
    status = orjson.loads(ops[-1]["value"])
    assert [t["name"] for t in status["templates"]] == ["envoy-proxy", "log-shipper", "trace-agent"]
    assert response["auditAnnotations"] == {
        "injected-templates": "envoy-proxy,log-shipper,trace-agent"
    }
    apply_patch(sample()["request"]["object"], response)


async def test_dry_run_is_answered_the_same(harness: Harness) -> None:
    plain = await harness.review(sample())
    dry = await harness.review(sample(dryRun=True))
    assert dry == plain


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (sample(kind={"group": "apps", "version": "v1", "kind": "Deployment"}), "not_pod"),
        (sample(subResource="status"), "not_pod"),
        (sample(operation="UPDATE"), "not_create"),
        (sample(namespace="kube-system"), "excluded_namespace"),
        (sample(""), "not_requested"),
        (sample("false"), "not_requested"),
        (
            with_pod(sample(), annotations={"sidecar-injector.io/status": "{}"}),
            "already_injected",
        ),
    ],
)
async def test_skips_are_admitted_without_a_patch(
    harness: Harness, document: dict[str, Any], reason: str
) -> None:
    response = await harness.review(document)
    assert response == {"uid": UID, "allowed": True}
    assert harness.requests("skipped", reason) == 1


async def test_unknown_template_is_denied_with_what_to_fix(harness: Harness) -> None:
    response = await harness.review(sample("log-shiper"))
    assert response["allowed"] is False
    assert response["status"] == {
        "code": 400,
        "message": "template 'log-shiper' not found; available: db-proxy, envoy-proxy, log-shipper, trace-agent",
    }
    assert "patch" not in response
    assert "patchType" not in response
    assert harness.requests("denied", "template_not_found") == 1


async def test_all_errors_are_joined_and_nothing_is_injected_on_deny(harness: Harness) -> None:
    document = with_pod(
        sample("log-shipper,nope"),
        annotations={
            "sidecar-injector.io/inject": "log-shipper,nope",
            "sidecar-injector.io/log-shipper.logLevel": "loud",
        },
    )
    response = await harness.review(document)
    message = response["status"]["message"]
    assert "annotation sidecar-injector.io/log-shipper.logLevel: 'loud' is not valid" in message
    assert "template 'nope' not found" in message
    assert harness.requests("denied", "invalid_parameter") == 1
    assert harness.injections("log-shipper") == 0


async def test_allow_mode_admits_what_worked_with_warnings(catalog: Catalog) -> None:
    harness = make_harness(catalog, on_error="allow")
    document = sample("log-shipper,nope")
    response = await harness.review(document)
    assert response["allowed"] is True
    assert response["warnings"] == [
        "template 'nope' not found; available: db-proxy, envoy-proxy, log-shipper, trace-agent"
    ]
    assert response["auditAnnotations"] == {"injected-templates": "log-shipper"}
    apply_patch(document["request"]["object"], response)
    assert harness.requests("error", "template_not_found") == 1
    assert harness.injections("log-shipper") == 1


async def test_allow_mode_without_anything_to_inject(catalog: Catalog) -> None:
    harness = make_harness(catalog, on_error="allow")
    response = await harness.review(sample("nope"))
    assert response["allowed"] is True
    assert "patch" not in response
    assert "auditAnnotations" not in response
    assert response["warnings"][0].startswith("template 'nope' not found")


async def test_conflict_warnings_reach_the_user(harness: Harness) -> None:
    document = sample("trace-agent")
    env = document["request"]["object"]["spec"]["containers"][0]["env"]
    env.append({"name": "OTEL_SERVICE_NAME", "value": "shop"})
    response = await harness.review(document)
    assert response["allowed"] is True
    assert any("OTEL_SERVICE_NAME" in w for w in response["warnings"])
    pod = apply_patch(document["request"]["object"], response)
    names = [e["name"] for e in pod["spec"]["containers"][0]["env"]]
    assert names.count("OTEL_SERVICE_NAME") == 1


@pytest.mark.parametrize(
    ("inject", "override", "allowed", "fix"),
    [
        (
            "log-shipper",
            "log-shiper",
            True,
            "did you mean sidecar-injector.io/log-shipper.logLevel?",
        ),
        (
            "log-shiper",
            "log-shipper",
            False,
            "did you mean to request 'log-shipper' ('log-shiper' does not exist)?",
        ),
    ],
    ids=["typo-in-the-override", "typo-in-the-request"],
)
async def test_an_override_of_a_template_not_requested_is_a_warning(
    harness: Harness, inject: str, override: str, allowed: bool, fix: str
) -> None:
    key = f"sidecar-injector.io/{override}.logLevel"
    document = with_pod(
        sample(inject), annotations={"sidecar-injector.io/inject": inject, key: "debug"}
    )
    response = await harness.review(document)
    assert response["allowed"] is allowed
    assert response["warnings"] == [
        f"annotation {key} overrides template {override!r}, which this pod does not request "
        f"(it requests {inject}): {fix}"
    ]


async def test_default_templates_for_true(catalog: Catalog) -> None:
    harness = make_harness(catalog, settings=Settings(default_templates=("trace-agent",)))
    response = await harness.review(sample("true"))
    assert response["auditAnnotations"] == {"injected-templates": "trace-agent"}
    unset = await make_harness(catalog).review(sample("true"))
    assert unset["allowed"] is False
    assert "--default-templates" in unset["status"]["message"]


async def test_a_template_that_failed_to_load_is_denied_with_its_error() -> None:
    good = build_catalog(ok="containers: [{name: ok, image: busybox}]\n")
    broken = good.merge(
        LoadResult(
            templates=dict(good.templates),
            errors={"bad": [LoadError("bad.yaml", "invalid YAML: mapping values", line=3)]},
        )
    )
    harness = make_harness(broken)
    response = await harness.review(sample("bad"))
    assert response["allowed"] is False
    assert "template 'bad' failed to load" in response["status"]["message"]
    assert "bad.yaml:3" in response["status"]["message"]
    assert harness.requests("denied", "template_load_failed") == 1


@pytest.mark.parametrize(("on_error", "allowed"), [("deny", False), ("allow", True)])
async def test_an_unexpected_exception_is_logged_and_answered_per_on_error(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch, on_error: str, allowed: bool
) -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("engine bug")

    monkeypatch.setattr(admission, "review", explode)
    harness = make_harness(catalog, on_error="deny" if on_error == "deny" else "allow")
    with capture_logs() as logs:
        response = await harness.review(sample())
    assert response["allowed"] is allowed
    text = orjson.dumps(response).decode()
    assert "engine bug" not in text
    assert "Traceback" not in text
    if allowed:
        assert "admitted without sidecars" in response["warnings"][0]
    else:
        assert response["status"]["code"] == 500
    failure = next(e for e in logs if e["event"] == "admission_internal_error")
    assert failure["uid"] == UID
    assert failure["exc_info"] is True
    assert harness.requests("error", "internal") == 1


# --- broken requests: HTTP errors with a short message, never a 500 ---


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "request body is not valid JSON"),
        (b"", "request body is not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"kind": "Pod", "apiVersion": "v1"}', "expected kind AdmissionReview"),
        (
            b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1beta1", "request": {}}',
            "apiVersion 'admission.k8s.io/v1beta1'",
        ),
        (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}', "no request object"),
        (
            b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {}}',
            "request has no uid",
        ),
        (
            b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", '
            b'"request": {"uid": 7}}',
            "request has no uid",
        ),
        (
            b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", '
            b'"request": {"uid": "u", "kind": "Pod", "object": {}}}',
            "request's kind must be an object",
        ),
        (
            b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", '
            b'"request": {"uid": "u", "kind": {"kind": "Pod"}, "object": []}}',
            "request's object must be an object or null",
        ),
    ],
)
async def test_not_an_admission_review_is_400(harness: Harness, body: bytes, message: str) -> None:
    with capture_logs() as logs:
        answer = await harness.post(body)
    assert answer.status_code == 400
    assert message in answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    assert harness.requests("error", "invalid_request") == 1
    assert logs[0]["event"] == "admission_request_refused"
    assert logs[0]["status"] == 400


@pytest.mark.parametrize("content_type", ["text/plain", "application/yaml", ""])
async def test_wrong_content_type_is_415(harness: Harness, content_type: str) -> None:
    answer = await harness.post(orjson.dumps(sample()), content_type=content_type)
    assert answer.status_code == 415
    assert "Content-Type must be application/json" in answer.text
    assert harness.requests("error", "unsupported_media_type") == 1


async def test_json_content_type_with_parameters_is_accepted(harness: Harness) -> None:
    answer = await harness.post(sample(), content_type="Application/JSON; charset=utf-8")
    assert answer.status_code == 200


async def test_content_length_over_the_limit_is_413_before_reading(catalog: Catalog) -> None:
    harness = make_harness(catalog, max_body_bytes=1000)
    answer = await harness.post(orjson.dumps(sample()))
    assert answer.status_code == 413
    assert "--max-body-bytes=1000" in answer.text
    assert answer.headers["connection"] == "close"
    assert harness.requests("error", "body_too_large") == 1


async def test_streamed_body_over_the_limit_is_413_without_reading_it_all(
    catalog: Catalog,
) -> None:
    harness = make_harness(catalog, max_body_bytes=1000)
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for index in range(100):
            sent.append(index)
            yield b" " * 400

    answer = await harness.webhook.post(
        "/mutate", content=chunks(), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 413
    assert len(sent) < 10
    assert harness.requests("error", "body_too_large") == 1


async def test_body_exactly_at_the_limit_is_read(catalog: Catalog) -> None:
    body = orjson.dumps(sample())
    harness = make_harness(catalog, max_body_bytes=len(body))
    assert (await harness.post(body)).status_code == 200


async def test_wrong_method_is_405(harness: Harness) -> None:
    answer = await harness.webhook.get("/mutate")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    total = sum(
        s.value
        for m in harness.registry.collect()
        if m.name == "sidecar_injector_admission_requests"
        for s in m.samples
        if s.name.endswith("_total")
    )
    assert total == 0


async def test_unknown_path_is_404(harness: Harness) -> None:
    answer = await harness.webhook.post("/webhook", content=b"{}")
    assert answer.status_code == 404


# --- the canonical log line ---


async def test_one_canonical_log_line_per_review(harness: Harness) -> None:
    with capture_logs() as logs:
        await harness.review(sample("log-shipper"))
    assert len(logs) == 1
    line = logs[0]
    duration = line.pop("duration_ms")
    assert isinstance(duration, float)
    assert duration >= 0
    assert line == {
        "event": "admission",
        "log_level": "info",
        "uid": UID,
        "namespace": "shop",
        "pod": "shop-api-7d9f8b6c5d-",
        "operation": "CREATE",
        "dry_run": False,
        "profile": None,
        "requested": ("log-shipper",),
        "injected": ("log-shipper",),
        "outcome": "injected",
        "reason": "ok",
        "errors": (),
    }


async def test_log_line_of_a_denial_names_the_errors_not_the_pod(harness: Harness) -> None:
    document = with_pod(sample("nope"), name="web-1")
    with capture_logs() as logs:
        await harness.review(document)
    line = logs[0]
    assert line["pod"] == "web-1"
    assert line["outcome"] == "denied"
    assert line["reason"] == "template_not_found"
    assert line["errors"][0].startswith("template 'nope' not found")
    assert "postgres" not in orjson.dumps(line).decode()


# --- metrics after a known sequence ---


async def test_metrics_after_a_sequence_of_requests(harness: Harness) -> None:
    for document in (
        sample("log-shipper"),
        sample("log-shipper,trace-agent"),
        sample(""),
        sample("nope"),
        sample(operation="DELETE"),
    ):
        await harness.review(document)
    await harness.post(b"nope")
    assert harness.requests("injected", "ok") == 2
    assert harness.requests("skipped", "not_requested") == 1
    assert harness.requests("skipped", "not_create") == 1
    assert harness.requests("denied", "template_not_found") == 1
    assert harness.requests("error", "invalid_request") == 1
    assert harness.requests("error", "internal") == 0
    assert harness.injections("log-shipper") == 2
    assert harness.injections("trace-agent") == 1
    assert harness.injections("envoy-proxy") == 0
    count = harness.registry.get_sample_value("sidecar_injector_admission_duration_seconds_count")
    assert count == 6


# --- namespace profiles: /mutate/<profile> ---

PROFILES = Settings(default_templates=("log-shipper",), profiles={"mesh": ("envoy-proxy", "nope")})


def unannotated() -> dict[str, Any]:
    return with_pod(sample(), annotations={"team": "shop"})


async def test_a_profile_path_injects_the_profile_and_records_it(catalog: Catalog) -> None:
    harness = make_harness(catalog, settings=PROFILES)
    with capture_logs() as logs:
        response = await harness.review(unannotated(), path="/mutate/enabled")
    pod = apply_patch(unannotated()["request"]["object"], response)
    status = orjson.loads(pod["metadata"]["annotations"]["sidecar-injector.io/status"])
    assert status["profile"] == "enabled"
    assert [t["name"] for t in status["templates"]] == ["log-shipper"]
    assert logs[0]["profile"] == "enabled"
    assert harness.requests("injected", "ok") == 1


async def test_the_pod_annotation_decides_on_a_profile_path(catalog: Catalog) -> None:
    harness = make_harness(catalog, settings=PROFILES)
    response = await harness.review(sample("trace-agent"), path="/mutate/unknown-profile")
    status = orjson.loads(orjson.loads(base64.b64decode(response["patch"]))[-1]["value"])
    assert [t["name"] for t in status["templates"]] == ["trace-agent"]
    assert "profile" not in status
    skipped = await harness.review(sample("false"), path="/mutate/mesh")
    assert skipped == {"uid": UID, "allowed": True}
    assert harness.requests("skipped", "not_requested") == 1


@pytest.mark.parametrize(
    ("path", "says"),
    [
        (
            "/mutate/unknown-profile",
            "namespace 'shop' is labeled sidecar-injector.io/inject with a",
        ),
        ("/mutate/typo", "namespace 'shop' asks for profile 'typo', which is not configured"),
    ],
)
async def test_an_unknown_profile_is_denied_listing_the_profiles(
    catalog: Catalog, path: str, says: str
) -> None:
    harness = make_harness(catalog, settings=PROFILES)
    assert harness.requests("denied", "profile_not_found") == 0
    with capture_logs() as logs:
        response = await harness.review(unannotated(), path=path)
    assert response["allowed"] is False
    assert response["status"]["message"].startswith(says)
    assert "<one of: enabled, mesh, disabled>" in response["status"]["message"]
    assert harness.requests("denied", "profile_not_found") == 1
    assert logs[0]["profile"] == path.removeprefix("/mutate/")


async def test_a_profile_naming_a_missing_template_fails_like_a_missing_template(
    catalog: Catalog,
) -> None:
    harness = make_harness(catalog, "allow", PROFILES)
    response = await harness.review(unannotated(), path="/mutate/mesh")
    assert response["allowed"] is True
    assert response["auditAnnotations"] == {"injected-templates": "envoy-proxy"}
    assert response["warnings"][0].startswith("template 'nope' not found; available:")
    assert harness.requests("error", "template_not_found") == 1


async def test_a_disabled_path_skips_even_annotated_pods(catalog: Catalog) -> None:
    harness = make_harness(catalog, settings=PROFILES)
    response = await harness.review(sample("log-shipper"), path="/mutate/disabled")
    assert response == {"uid": UID, "allowed": True}
    assert harness.requests("skipped", "excluded_namespace") == 1


@pytest.mark.parametrize("path", ["/mutate/", "/mutate/a/b", "/mutate//"])
async def test_a_path_that_names_no_profile_is_not_found(harness: Harness, path: str) -> None:
    answer = await harness.post(sample("log-shipper"), path=path)
    assert answer.status_code == 404
    assert harness.requests("denied", "profile_not_found") == 0


async def test_the_new_reasons_exist_from_start_up(harness: Harness) -> None:
    for reason in ("profile_not_found", "namespace_not_allowed", "parameter_locked"):
        assert harness.requests("denied", reason) == 0
        assert harness.requests("error", reason) == 0


# --- bounded answers: hostile annotation values never make a large denial ---


@pytest.mark.parametrize(
    ("inject", "starts"),
    [
        (
            ",".join(f"nope-{i}" for i in range(1000)),
            "sidecar-injector.io/inject names 1000 templates; at most 32",
        ),
        (",".join(f"{'x' * 300}-{i}" for i in range(32)), f"template '{'x' * 300}-0' not found"),
        ("y" * 100_000, "template 'yyyy"),
        (",".join(f"{'ü' * 200}-{i}" for i in range(20)), "template '" + "ü" * 10),
    ],
    ids=["1000-names", "32-long-names", "one-huge-name", "wide-characters"],
)
async def test_denials_stay_under_one_kib(catalog: Catalog, inject: str, starts: str) -> None:
    for on_error in ("deny", "allow"):
        harness = make_harness(catalog, on_error)
        with capture_logs() as logs:
            response = await harness.review(sample(inject))
        messages = [response["status"]["message"]] if on_error == "deny" else response["warnings"]
        assert len("; ".join(messages).encode()) <= 1024
        assert messages[0].startswith(starts)
        assert len("; ".join(logs[0]["errors"]).encode()) <= 1024, "the log line is bounded too"


async def test_too_many_templates_is_its_own_reason(harness: Harness) -> None:
    await harness.review(sample(",".join(f"t{i}" for i in range(33))))
    assert harness.requests("denied", "too_many_templates") == 1
    ok = await harness.review(sample(",".join(["log-shipper"] * 40)))
    assert ok["allowed"] is True, "repeats count once"
