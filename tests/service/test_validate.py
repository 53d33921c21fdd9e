"""POST /validate: templates ConfigMap edits are judged exactly as a reload judges them (the
same fixtures fed to both), namespace inject labels that name no profile are refused, all
answered in bounded AdmissionReviews, counted by kind, logged; requests no apiserver would send
are answered over real HTTPS by the real process, never with a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from injector.catalog import Catalog
from injector.loader import Source, load_sources
from injector.policy import Settings
from injector.service.metrics import Metrics
from injector.service.reload import Templates
from injector.service.state import State
from injector.summary import LIMIT, SEPARATOR, bounded
from tests.service.process import SERVICE_NAME, Service, running
from tests.service.support import Harness, KubeletVolume, Mounts, make_harness, trusting
from tests.test_loader import BROKEN, GOOD, HOSTILE
from tests.test_validation import edit, namespace

pytestmark = pytest.mark.anyio

SETTINGS = Settings(profiles={"mesh": ("good",)})


def review(request: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


async def validate(harness: Harness, request: dict[str, Any]) -> dict[str, Any]:
    answer = await harness.post(review(request), path="/validate")
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert (document["apiVersion"], document["kind"]) == ("admission.k8s.io/v1", "AdmissionReview")
    response: dict[str, Any] = document["response"]
    assert response["uid"] == request["uid"]
    return response


def validations(harness: Harness, result: str, kind: str = "configmap") -> float | None:
    return harness.registry.get_sample_value(
        "sidecar_injector_config_validations_total", {"kind": kind, "result": result}
    )


@pytest.fixture
def validating(catalog: Catalog) -> Harness:
    return make_harness(catalog, settings=SETTINGS)


def reload_errors(tmp_path: Path, before: dict[str, str], after: dict[str, str]) -> list[str]:
    """What a reload of the templates directory from `before` to `after` reports: the load
    errors of the new catalog, or the reason a reload was refused."""
    volume = KubeletVolume(tmp_path / "templates")
    volume.write(before)
    state = State(SETTINGS, "deny")
    templates = Templates(volume.root, state, Metrics(CollectorRegistry()))
    files = templates.read()
    assert not isinstance(files, str)
    templates.load_first(files)
    volume.write(after)
    with capture_logs() as logs:
        templates.apply(templates.build(templates.read()))
    refused = [line["reason"] for line in logs if line["event"] == "templates_reload_refused"]
    errors = [str(e) for errors in state.catalog.errors.values() for e in errors]
    return refused or errors


@pytest.mark.parametrize(
    "after",
    [
        *({"good.yaml": GOOD, "t.yaml": text} for text, _ in BROKEN + HOSTILE),
        {"good.yaml": GOOD, "notes.txt": "not a template"},
        {},
        {"good.yaml": GOOD},
    ],
)
async def test_validate_refuses_exactly_what_a_reload_refuses(
    tmp_path: Path, after: dict[str, str]
) -> None:
    """Both start from the same served templates: the webhook's catalog and the directory."""
    before = {"good.yaml": GOOD, "t.yaml": GOOD}
    reloaded = reload_errors(tmp_path, before, after)
    serving = Catalog.from_load(load_sources(Source(k, v, k) for k, v in before.items()))
    response = await validate(make_harness(serving, settings=SETTINGS), edit(after, old=before))
    assert response["allowed"] is (not reloaded)
    if reloaded:
        assert response["status"]["message"] == SEPARATOR.join(bounded(reloaded))


async def test_a_denial_names_key_line_and_field_and_is_counted_and_logged(
    validating: Harness,
) -> None:
    assert validations(validating, "allowed") == validations(validating, "denied") == 0
    broken = GOOD.replace("busybox:1.36", "'{{ params.imge }}'")
    with capture_logs() as logs:
        response = await validate(
            validating,
            edit(
                {"good.yaml": GOOD, "log-shipper.yaml": broken},
                userInfo={"username": "alice@example.com", "groups": ["devs"]},
                namespace="sidecar-injector",
                name="sidecar-injector-templates",
            ),
        )
    assert response["allowed"] is False
    assert response["status"] == {
        "code": 400,
        "message": "log-shipper.yaml:3: containers[0].image: params.imge is not declared in "
        "parameters (declared: none)",
    }
    assert validations(validating, "denied") == 1
    [line] = logs
    assert line.pop("duration_ms") >= 0
    assert line == {
        "event": "config_validation",
        "log_level": "info",
        "uid": "u",
        "kind": "configmap",
        "user": "alice@example.com",
        "namespace": "sidecar-injector",
        "name": "sidecar-injector-templates",
        "operation": "UPDATE",
        "dry_run": False,
        "result": "denied",
        "errors": [response["status"]["message"]],
        "error_count": 1,
        "warnings": 0,
    }
    assert "busybox" not in orjson.dumps(line).decode(), "templates are never logged"


async def test_a_dry_run_is_answered_counted_and_logged_the_same(validating: Harness) -> None:
    request = edit({"t.yaml": "containers: ["}, dryRun=True)
    with capture_logs() as logs:
        dry = await validate(validating, request)
    assert dry == await validate(validating, {**request, "dryRun": False})
    assert validations(validating, "denied") == 2
    assert logs[0]["dry_run"] is True and logs[0]["result"] == "denied"


async def test_warnings_and_other_objects(validating: Harness) -> None:
    removed = await validate(validating, edit({"t.yaml": GOOD}, old={"good.yaml": GOOD}))
    assert removed["allowed"] is True
    assert removed["warnings"] == [
        "the edit removes template 'good', which profile 'mesh' names: pods that rely on it "
        "will be denied until it is back"
    ]
    assert validations(validating, "allowed") == 1
    secret = edit({"t.yaml": "containers: ["})
    secret["kind"] = {"group": "", "version": "v1", "kind": "Secret"}
    with capture_logs() as logs:
        assert await validate(validating, secret) == {"uid": "u", "allowed": True}
    # Neither a ConfigMap nor a Namespace: allowed untouched, logged, counted under no kind.
    assert [(line["kind"], line["result"]) for line in logs] == [(None, "allowed")]
    for kind in ("configmap", "namespace"):
        assert validations(validating, "allowed", kind) == (kind == "configmap")


async def test_a_hostile_configmap_gets_a_bounded_denial(validating: Harness) -> None:
    many = {f"t{i}.yaml": "containers: [\n" for i in range(10_000)}
    response = await validate(validating, edit(many))
    message = response["status"]["message"]
    assert len(message.encode()) <= LIMIT
    assert message.startswith("t0.yaml:2: invalid YAML") and message.endswith(" more")


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"not json", "application/json", 400),
        (b"{}", "application/json", 400),
        (orjson.dumps(review(edit({}))), "text/plain", 415),
        (b" " * 4_000_000, "application/json", 413),
    ],
)
async def test_bad_requests_are_4xx_not_reviews(
    validating: Harness, body: bytes, content_type: str, status: int
) -> None:
    answer = await validating.post(body, content_type=content_type, path="/validate")
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/plain")
    assert validations(validating, "allowed") == validations(validating, "denied") == 0


async def test_the_log_line_is_bounded_too(validating: Harness) -> None:
    huge = "containers: [{name: a, image: x}]\nnamespaces: ['" + "X" * 200_000 + "']\n"
    with capture_logs() as logs:
        await validate(validating, edit({"t.yaml": huge}))
    [line] = logs
    assert line["error_count"] == 1
    assert len("; ".join(line["errors"]).encode()) <= LIMIT


# --- namespace inject labels ---

KEY = "sidecar-injector.io/inject"
TYPO = (
    'namespace "shop": label sidecar-injector.io/inject=mehs names no profile; '
    'valid values: disabled, mesh (did you mean "mesh"?)'
)


async def test_a_namespace_typo_is_denied_counted_and_logged_with_its_value(
    validating: Harness,
) -> None:
    for kind in ("configmap", "namespace"):
        for result in ("allowed", "denied"):
            assert validations(validating, result, kind) == 0, "every series from start-up"
    with capture_logs() as logs:
        response = await validate(
            validating,
            namespace({KEY: "mehs"}, old={}, userInfo={"username": "alice@example.com"}),
        )
    assert response == {"uid": "u", "allowed": False, "status": {"code": 400, "message": TYPO}}
    assert validations(validating, "denied", "namespace") == 1
    assert validations(validating, "denied", "configmap") == 0
    [line] = logs
    assert line.pop("duration_ms") >= 0
    assert line == {
        "event": "config_validation",
        "log_level": "info",
        "uid": "u",
        "kind": "namespace",
        "user": "alice@example.com",
        "namespace": None,
        "name": "shop",
        "label": "mehs",
        "operation": "UPDATE",
        "dry_run": False,
        "result": "denied",
        "errors": [TYPO],
        "error_count": 1,
        "warnings": 0,
    }


async def test_valid_removed_and_unchanged_labels_are_allowed(validating: Harness) -> None:
    for request in (
        namespace({KEY: "mesh"}, operation="CREATE"),
        namespace({KEY: "disabled"}, old={KEY: "mesh"}),
        namespace({}, old={KEY: "mesh"}),
        namespace({KEY: "mehs"}, old={KEY: "mehs"}),
    ):
        assert await validate(validating, request) == {"uid": "u", "allowed": True}
    enabled = await validate(validating, namespace({KEY: "enabled"}, operation="CREATE"))
    assert enabled["allowed"] is False, "no default templates here"
    assert validations(validating, "allowed", "namespace") == 4
    assert validations(validating, "denied", "namespace") == 1
    assert validations(validating, "allowed", "configmap") == 0


# Over real HTTPS, the process as the chart runs it: requests no apiserver sends are still
# answered with an AdmissionReview (allowed, or refused saying what is wrong), never a 500.


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Mounts]]:
    mounts = Mounts.create(tmp_path_factory.mktemp("validate"))
    mounts.templates.write({"good.yaml": GOOD})
    with running(mounts.args("--profile=mesh=good")) as service:
        yield service, mounts


def over_https(served: tuple[Service, Mounts], request: dict[str, Any]) -> dict[str, Any]:
    service, mounts = served
    with httpx.Client(verify=trusting(mounts.ca), timeout=10) as client:
        answer = client.post(
            f"https://127.0.0.1:{service.port}/validate",
            content=orjson.dumps(review(request)),
            headers={"content-type": "application/json"},
            extensions={"sni_hostname": SERVICE_NAME},
        )
    assert answer.status_code == 200, answer.text
    response: dict[str, Any] = answer.json()["response"]
    assert response["uid"] == request["uid"]
    return response


def without(request: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in request.items() if k != key}


MANY = {f"team.example.com/label-{i}": "x" * 63 for i in range(5_000)}
MALFORMED: list[tuple[str, dict[str, Any], str | None]] = [
    ("no labels", namespace(None, operation="CREATE"), None),
    ("no labels, no metadata", {**namespace(), "object": {"kind": "Namespace"}}, None),
    ("thousands of labels", namespace({**MANY, KEY: "mesh"}, old=MANY), None),
    ("thousands of labels, a typo", namespace({**MANY, KEY: "mehs"}, old=MANY), TYPO),
    ("UPDATE without oldObject", without(namespace({KEY: "mehs"}), "oldObject"), TYPO),
    ("UPDATE, oldObject null", namespace({KEY: "mehs"}, oldObject=None), TYPO),
    (
        "a non-string label value",
        namespace({KEY: ["mesh"]}, operation="CREATE"),
        'namespace "shop": label sidecar-injector.io/inject must be a string',
    ),
    (
        "labels that are not a map",
        namespace("mesh", operation="CREATE"),
        'namespace "shop": metadata.labels must be a map of strings',
    ),
    (
        "no object",
        without(namespace({KEY: "mehs"}), "object"),
        "the request has no Namespace object",
    ),
    ("object null", namespace({KEY: "mehs"}, object=None), "the request has no Namespace object"),
    ("no operation", without(namespace({KEY: "mehs"}), "operation"), None),
]


@pytest.mark.parametrize(
    ("request_", "refusal"), [(r, e) for _, r, e in MALFORMED], ids=[n for n, _, _ in MALFORMED]
)
def test_bad_namespace_reviews_are_answered_never_a_500(
    served: tuple[Service, Mounts], request_: dict[str, Any], refusal: str | None
) -> None:
    service, _ = served
    before = {
        result: service.metric(
            "sidecar_injector_config_validations_total", kind="namespace", result=result
        )
        for result in ("allowed", "denied")
    }
    response = over_https(served, request_)
    if refusal is None:
        assert response == {"uid": "u", "allowed": True}
    else:
        assert response == {
            "uid": "u",
            "allowed": False,
            "status": {"code": 400, "message": refusal},
        }
    counted = "allowed" if refusal is None else "denied"
    after = service.metric(
        "sidecar_injector_config_validations_total", kind="namespace", result=counted
    )
    assert after == (before[counted] or 0) + 1
    assert "Traceback" not in service.stdout.text() + service.stderr.text()
    assert not service.events("validation_request_refused")
