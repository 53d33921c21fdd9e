from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import pytest

from injector.engine import decide, review
from injector.policy import Settings
from tests.helpers import catalog
from tests.k8s import assert_valid, pod

SIDECAR = """
parameters:
  level: {type: string, enum: [info, debug], default: info}
  port: {type: int, default: 9000, min: 1024}
containers:
  - name: sidecar
    image: busybox:1.36
    args: ["--level={{ params.level }}", "--pod={{ pod.name }}"]
    ports: [{containerPort: "{{ params.port }}"}]
volumes:
  - {name: shared, emptyDir: {}}
"""
CATALOG = catalog(
    sidecar=SIDECAR,
    other="containers: [{name: other, image: 'busybox:1.36'}]\n",
    same_volume="volumes: [{name: shared, emptyDir: {}}]\n",
    needs_team="containers: [{name: t, image: x, args: ['{{ pod.labels.app }}']}]\n",
    required="parameters: {image: {type: string}}\ncontainers: [{name: r, image: '{{ params.image }}'}]\n",
)
S = Settings()


def opted_in(value: str, **annotations: str) -> dict[str, Any]:
    p = pod()
    p["metadata"]["annotations"] = {"sidecar-injector.io/inject": value, **annotations}
    return p


def test_injects_and_records_status() -> None:
    p = opted_in("sidecar")
    decision = decide(p, "shop", CATALOG, S)
    assert decision.injected == ("sidecar",) and not decision.errors
    patched = jsonpatch.apply_patch(p, list(decision.patch))
    assert_valid(patched)
    status = json.loads(patched["metadata"]["annotations"]["sidecar-injector.io/status"])
    assert status == {
        "templates": [{"name": "sidecar", "digest": CATALOG.templates["sidecar"].digest}],
        "containers": ["sidecar"],
        "initContainers": [],
        "volumes": ["shared"],
    }
    assert decision.patch[-1]["path"] == "/metadata/annotations/sidecar-injector.io~1status"
    assert decide(patched, "shop", CATALOG, S).skip == "already_injected"


def test_parameter_overrides_are_typed_and_validated() -> None:
    p = opted_in("sidecar", **{"sidecar-injector.io/sidecar.port": "8081"})
    container = jsonpatch.apply_patch(p, list(decide(p, "shop", CATALOG, S).patch))["spec"][
        "containers"
    ][1]
    assert container["ports"] == [{"containerPort": 8081}]


@pytest.mark.parametrize(
    ("annotations", "reason", "message"),
    [
        (
            {"sidecar-injector.io/sidecar.level": "loud"},
            "invalid_parameter",
            "annotation sidecar-injector.io/sidecar.level: 'loud' is not valid: expected one of info, debug",
        ),
        (
            {"sidecar-injector.io/sidecar.port": "80"},
            "invalid_parameter",
            "annotation sidecar-injector.io/sidecar.port: '80' is not valid: expected an integer of at least 1024",
        ),
        (
            {"sidecar-injector.io/sidecar.levle": "x"},
            "invalid_parameter",
            "annotation sidecar-injector.io/sidecar.levle: template 'sidecar' has no such parameter "
            "(parameters: level, port)",
        ),
    ],
)
def test_bad_overrides_name_the_annotation_value_and_expectation(
    annotations: dict[str, str], reason: str, message: str
) -> None:
    decision = decide(opted_in("sidecar", **annotations), "shop", CATALOG, S)
    assert [(e.reason, e.message, e.template) for e in decision.errors] == [
        (reason, message, "sidecar")
    ]
    assert decision.patch == ()


def test_required_parameters_must_be_set() -> None:
    decision = decide(opted_in("required"), "shop", CATALOG, S)
    assert decision.errors[0].message == (
        "template 'required' requires parameter image: set annotation "
        "sidecar-injector.io/required.image to a string"
    )


def test_unknown_template_lists_the_available_ones() -> None:
    decision = decide(opted_in("sidecr"), "shop", CATALOG, S)
    assert decision.errors[0].reason == "template_not_found"
    assert decision.errors[0].message == (
        "template 'sidecr' not found; available: needs-team, other, required, same-volume, sidecar"
    )


def test_failed_templates_leave_the_others_in_the_patch() -> None:
    decision = decide(opted_in("nope,other"), "shop", CATALOG, S)
    assert decision.injected == ("other",)
    assert [e.reason for e in decision.errors] == ["template_not_found"]
    assert any(op["path"] == "/spec/containers/-" for op in decision.patch)


def test_name_clashes_with_the_pod_or_an_earlier_template_are_conflicts() -> None:
    p = opted_in("sidecar")
    p["spec"]["initContainers"] = [{"name": "sidecar", "image": "x"}]
    decision = decide(p, "shop", CATALOG, S)
    assert decision.errors[0].message == (
        "template 'sidecar' adds container 'sidecar', but the pod already has a container "
        "named 'sidecar'; rename the pod's container"
    )
    decision = decide(opted_in("sidecar,same-volume"), "shop", CATALOG, S)
    assert decision.injected == ("sidecar",)
    assert decision.errors[0].message == (
        "template 'same-volume' adds volume 'shared', but template 'sidecar', requested before "
        "it, adds a volume of that name too"
    )


def test_render_failures_at_request_time_name_the_field() -> None:
    decision = decide(opted_in("needs-team"), "shop", CATALOG, S)
    assert decision.errors[0].reason == "render_failed"
    assert decision.errors[0].message.startswith(
        "template 'needs-team' failed to render containers[0].args[0] for this pod: undefined value"
    )


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.pop("spec"), "the pod has no spec"),
        (lambda p: p.update(metadata=[]), "the pod has no metadata"),
        (
            lambda p: p["spec"].update(containers=[]),
            "spec.containers must list at least one container",
        ),
        (lambda p: p["spec"].update(volumes={}), "spec.volumes must be a list of objects"),
        (lambda p: p["metadata"].update(annotations="x"), "metadata.annotations must be a map"),
    ],
)
def test_malformed_pods_are_invalid_pod_errors(mutate: Any, message: str) -> None:
    p = opted_in("sidecar")
    mutate(p)
    decision = decide(p, "shop", CATALOG, S)
    assert [(e.reason, e.message) for e in decision.errors] == [("invalid_pod", message)]


def test_review_reads_the_admission_request() -> None:
    p = opted_in("sidecar")
    p["metadata"].pop("namespace")
    request = {
        "uid": "1",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "operation": "CREATE",
        "namespace": "kube-system",
        "object": p,
    }
    assert review(request, CATALOG, S).skip == "excluded_namespace"
    assert review({**request, "namespace": "shop"}, CATALOG, S).injected == ("sidecar",)
    assert review({**request, "operation": "DELETE"}, CATALOG, S).skip == "not_create"
    assert review({**request, "object": None}, CATALOG, S).errors[0].reason == "invalid_pod"


def test_the_pod_is_never_modified() -> None:
    p = opted_in("sidecar,other")
    before = copy.deepcopy(p)
    decide(p, "shop", CATALOG, S)
    assert p == before


def test_no_opt_in_is_skipped() -> None:
    assert decide(pod(), "shop", CATALOG, S).skip == "not_requested"
    assert decide(opted_in("false"), "shop", CATALOG, S).skip == "not_requested"


def test_container_env_and_mounts_must_be_lists() -> None:
    p = opted_in("sidecar")
    p["spec"]["containers"][0]["env"] = {"A": "b"}
    decision = decide(p, "shop", CATALOG, S)
    assert [(e.reason, e.message) for e in decision.errors] == [
        ("invalid_pod", "spec.containers[0].env must be a list")
    ]


def test_integers_beyond_64_bits_are_invalid_overrides() -> None:
    p = opted_in("sidecar", **{"sidecar-injector.io/sidecar.port": "99999999999999999999"})
    decision = decide(p, "shop", CATALOG, S)
    assert [e.reason for e in decision.errors] == ["invalid_parameter"]


TENANCY = catalog(
    payments="""
namespaces: ["payments-*", prod, "team-?", "x[ab]"]
parameters:
  endpoint: {type: string, default: "collector:4317", overridable: false}
  level: {type: string, default: info}
containers:
  - {name: pay, image: x, args: ["{{ params.endpoint }}", "{{ params.level }}"]}
""",
    anywhere="containers: [{name: any, image: x}]\n",
)


@pytest.mark.parametrize(
    ("namespace", "allowed"),
    [
        ("payments-eu", True),
        ("payments-", True),
        ("prod", True),
        ("team-a", True),
        ("xa", True),
        ("prod-2", False),
        ("Prod", False),
        ("payments", False),
        ("team-ab", False),
        ("xc", False),
        ("dev-42", False),
    ],
)
def test_the_namespace_allow_list_is_a_case_sensitive_glob_match(
    namespace: str, allowed: bool
) -> None:
    decision = decide(opted_in("payments,anywhere"), namespace, TENANCY, S)
    if allowed:
        assert decision.injected == ("payments", "anywhere") and not decision.errors
        return
    assert decision.injected == ("anywhere",)
    [error] = decision.errors
    assert (error.reason, error.template) == ("namespace_not_allowed", "payments")
    assert error.message == (
        f"template 'payments' is not allowed in namespace {namespace!r} "
        "(allowed: payments-*, prod, team-?, x[ab])"
    )


def test_a_locked_parameter_cannot_be_overridden_but_the_others_can() -> None:
    ok = decide(opted_in("payments", **{"sidecar-injector.io/payments.level": "debug"}), "prod",
                TENANCY, S)  # fmt: skip
    assert ok.injected == ("payments",)
    assert ok.patch[0]["value"]["args"] == ["collector:4317", "debug"]
    locked = decide(
        opted_in(
            "payments",
            **{
                "sidecar-injector.io/payments.level": "nope-but-valid",
                "sidecar-injector.io/payments.endpoint": "evil:1",
                "sidecar-injector.io/payments.bogus": "1",
            },
        ),
        "prod",
        TENANCY,
        S,
    )
    assert [e.reason for e in locked.errors] == ["parameter_locked", "invalid_parameter"]
    assert locked.errors[0].message == (
        "annotation sidecar-injector.io/payments.endpoint: parameter endpoint of template "
        "'payments' is locked by the operator (overridable: false); remove the annotation"
    )
    assert not locked.patch


def test_review_passes_the_namespace_profile_on() -> None:
    request = {
        "uid": "u",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "operation": "CREATE",
        "namespace": "prod",
        "object": pod(),
    }
    settings = Settings(profiles={"pay": ("payments",)})
    decision = review(request, TENANCY, settings, "pay")
    assert decision.injected == ("payments",) and decision.profile == "pay"
    assert decision.patch[-1]["path"] == "/metadata/annotations/sidecar-injector.io~1status"
    assert json.loads(decision.patch[-1]["value"])["profile"] == "pay"
    assert review(request, TENANCY, settings).skip == "not_requested"
