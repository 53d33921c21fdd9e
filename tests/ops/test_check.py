"""`check` over a snapshot of an install: one result per check, ✖ with what to do."""

from __future__ import annotations

import base64
import dataclasses
import datetime
from typing import Any, cast

import pytest
import trustme
from lightkube.resources.admissionregistration_v1 import (
    MutatingWebhookConfiguration,
    ValidatingWebhookConfiguration,
)
from lightkube.resources.apps_v1 import Deployment

from injector.loader import Source, load_sources
from injector.ops.certs import covers, decode_bundle, verify
from injector.ops.check import Result, run_checks
from injector.ops.install import Install, service_config
from injector.ops.snapshot import Snapshot, Unverifiable
from tests.test_loader import GOOD

NOW = datetime.datetime.now(datetime.UTC)
NAME = "sidecar-injector.sidecar-injector.svc"
CA = trustme.CA()
LEAF = CA.issue_cert(NAME)


def chain(leaf: trustme.LeafCert) -> bytes:
    return b"".join(blob.bytes() for blob in leaf.cert_chain_pems)


def entry(bundle: bytes, name: str = "inject.sidecar-injector.io", **config: Any) -> dict[str, Any]:
    client = config or {
        "service": {"name": "sidecar-injector", "namespace": "sidecar-injector", "path": "/mutate"}
    }
    return {
        "name": name,
        "clientConfig": {**client, "caBundle": base64.b64encode(bundle).decode()},
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "failurePolicy": "Fail",
    }


def install(
    bundle: bytes = CA.cert_pem.bytes(),
    ready: int = 2,
    args: list[str] | None = None,
    replicas: int = 2,
    validating: tuple[str, ...] = (),
    **config: Any,
) -> Install:
    flags = ["--default-templates=log-shipper"] if args is None else args
    container = {"name": "sidecar-injector", "image": "x", "args": ["serve", *flags]}
    deployment = cast(
        Deployment,
        Deployment.from_dict(
            {
                "metadata": {"name": "sidecar-injector", "namespace": "sidecar-injector"},
                "spec": {
                    "replicas": replicas,
                    "selector": {},
                    "template": {"spec": {"containers": [container]}},
                },
                "status": {"readyReplicas": ready},
            }
        ),
    )
    assert deployment.spec is not None and deployment.spec.template.spec is not None
    built = deployment.spec.template.spec.containers[0]
    return Install(
        "sidecar-injector",
        "sidecar-injector",
        deployment,
        built,
        service_config(built),
        cast(
            MutatingWebhookConfiguration,
            MutatingWebhookConfiguration.from_dict(
                {"metadata": {"name": "m"}, "webhooks": [entry(bundle, **config)]}
            ),
        ),
        cast(
            ValidatingWebhookConfiguration,
            ValidatingWebhookConfiguration.from_dict(
                {
                    "metadata": {"name": "v"},
                    "webhooks": [
                        entry(bundle, name, **config)
                        for name in validating or ("templates.x.io", "namespace-labels.x.io")
                    ],
                }
            ),
        ),
        "sidecar-injector-templates",
        "sidecar-injector-tls",
    )


def snapshot(**changes: Any) -> Snapshot:
    healthy = Snapshot(
        install(),
        "ClusterIP",
        2,
        chain(LEAF),
        [("sidecar-injector-serving", "sidecar-injector-tls", "True")],
        [Source("log-shipper.yaml", GOOD, "log-shipper.yaml")],
        {"shop": "enabled"},
    )
    return dataclasses.replace(healthy, **changes)


def failures(results: list[Result]) -> list[tuple[str, str]]:
    return [(r.check, r.message) for r in results if r.level != "ok"]


def test_a_healthy_install_passes_every_check() -> None:
    results = run_checks(snapshot(), NOW)
    assert failures(results) == []
    assert [r.check for r in results] == [
        "webhook configuration",
        "template validation",
        "label validation",
        "endpoints",
        "serving certificate",
        "cert-manager",
        "replicas",
        "templates",
        "profiles",
        "namespace labels",
    ]


@pytest.mark.parametrize(
    ("changes", "check", "says", "fix"),
    [
        (
            {"install": install(trustme.CA().cert_pem.bytes())},
            "serving certificate",
            "the caBundle does not verify the serving certificate",
            "make the caBundle the CA",
        ),
        (
            {"serving_chain": chain(CA.issue_cert("other.default.svc"))},
            "serving certificate",
            f"does not cover {NAME}",
            "reissue it",
        ),
        (
            {
                "serving_chain": chain(
                    CA.issue_cert(
                        NAME,
                        not_before=NOW - datetime.timedelta(days=9),
                        not_after=NOW - datetime.timedelta(days=1),
                    )
                )
            },
            "serving certificate",
            "expired on",
            "renew it",
        ),
        (
            {"serving_chain": "the serving Secret sidecar-injector-tls does not exist"},
            "serving certificate",
            "does not exist",
            "check the serving Secret",
        ),
        ({"ready_endpoints": 0}, "endpoints", "no ready endpoint", "describe deployment"),
        ({"service_type": None}, "endpoints", "does not exist", "helm upgrade"),
        (
            {"install": install(ready=0)},
            "replicas",
            "no ready replica (of 2): opted-in pods are refused (failurePolicy Fail)",
            "describe deployment",
        ),
        (
            {"install": install(ready=0, replicas=0)},
            "replicas",
            "is scaled to 0 replicas: opted-in pods are refused",
            "scale deployment sidecar-injector --replicas=2",
        ),
        (
            {
                "install": install(args=["--profile=mesh=log-shipper"]),
                "templates": [Source("log-shipper.yaml", "containers: [", "log-shipper.yaml")],
            },
            "profiles",
            "profile 'mesh' name(s) log-shipper, which fail to load: replicas that loaded an "
            "earlier good version still serve it; pods relying on it that reach a replica "
            "started since are denied",
            "config.profiles",
        ),
        (
            {"install": install(args=["--on-error=allow"]), "labeled_namespaces": {"dev": "obs"}},
            "namespace labels",
            "its pods without their own sidecar-injector.io/inject annotation are admitted "
            "without sidecars (--on-error=allow)",
            "--overwrite",
        ),
        (
            {"certificates": [("s", "sidecar-injector-tls", "False: Issuing: waiting")]},
            "cert-manager",
            "not Ready (False: Issuing: waiting)",
            "describe certificate",
        ),
        (
            {"templates": [Source("log-shipper.yaml", "containers: [", "log-shipper.yaml")]},
            "templates",
            "log-shipper.yaml:2: invalid YAML",
            "sidecar-injector validate",
        ),
        (
            {"templates": []},
            "templates",
            "holds no template: a restarted replica would serve none",
            "add the templates back",
        ),
        (
            {"install": install(args=["--profile=mesh=envoy"])},
            "profiles",
            "profile 'mesh' name(s) envoy, which do not exist: pods relying on it are denied",
            "config.profiles",
        ),
        (
            {"install": install(args=[])},
            "namespace labels",
            "=enabled, which asks for the default templates, but none are configured",
            "kubectl label namespace shop",
        ),
        (
            {"labeled_namespaces": {"dev": "obs"}},
            "namespace labels",
            "names no profile",
            "sidecar-injector.io/inject=<one of: disabled, enabled> --overwrite",
        ),
        (
            {"labeled_namespaces": {"dev": "enabeld"}},
            "namespace labels",
            "names no profile",
            "kubectl label namespace dev sidecar-injector.io/inject=enabled --overwrite",
        ),
    ],
)
def test_each_failure_says_what_and_what_to_do(
    changes: dict[str, Any], check: str, says: str, fix: str
) -> None:
    results = run_checks(snapshot(**changes), NOW)
    [failed] = [r for r in results if r.level == "fail" and r.check == check]
    assert (failed.check, says in failed.message, fix in failed.fix) == (check, True, True), failed


def test_warnings_do_not_fail() -> None:
    short = chain(CA.issue_cert(NAME, not_after=NOW + datetime.timedelta(days=3)))
    one = install(ready=1)
    results = run_checks(
        snapshot(install=one, serving_chain=short, service_type="ExternalName"), NOW
    )
    assert {r.level for r in results} == {"ok", "warn"}
    assert (
        "serving certificate",
        "every caBundle verifies it; it expires in 2 day(s)",
    ) in failures(results)
    assert any(
        c == "replicas" and "1 ready replica with failurePolicy Fail" in m
        for c, m in failures(results)
    )


def test_a_validating_entry_turned_off_is_a_warning() -> None:
    only_templates = install(validating=("templates.x.io",))
    results = run_checks(snapshot(install=only_templates), NOW)
    assert failures(results) == [
        (
            "label validation",
            "namespace inject labels are not checked at kubectl time "
            "(webhook.validateNamespaceLabels=false?)",
        )
    ]
    assert {r.level for r in results} == {"ok", "warn"}


def test_url_webhooks_need_no_endpoints_and_are_verified_for_their_host() -> None:
    leaf = CA.issue_cert("injector.example.com")
    url = install(
        url="https://injector.example.com/mutate", args=["--default-templates=log-shipper"]
    )
    results = run_checks(snapshot(install=url, serving_chain=chain(leaf), service_type=None), NOW)
    assert failures(results) == []


def test_certificate_helpers() -> None:
    assert decode_bundle(base64.b64encode(b"pem").decode()) == b"pem"
    assert decode_bundle("-----BEGIN x") == b"-----BEGIN x"
    assert decode_bundle("%%%") == b""
    assert verify(b"", chain(LEAF), NAME, NOW).problems == ("the caBundle holds no certificate",)
    intermediate = CA.create_child_ca()
    via = intermediate.issue_cert(NAME)
    assert verify(CA.cert_pem.bytes(), chain(via), NAME, NOW).problems == ()


def test_labels_on_namespaces_the_webhook_never_sees_are_not_judged() -> None:
    labels = {"kube-system": "obs", "sidecar-injector": "obs", "dev": "enabled"}
    results = run_checks(snapshot(labeled_namespaces=labels), NOW)
    assert failures(results) == []
    assert ("namespace labels", "1 labeled namespace(s)") in [(r.check, r.message) for r in results]


def test_certificate_names_match_case_insensitively_and_by_one_label_wildcards() -> None:
    assert covers("Injector.NS.svc", "injector.ns.svc.")
    assert covers("*.ns.svc", "injector.ns.svc")
    assert not covers("*.ns.svc", "a.injector.ns.svc")
    assert not covers("*.ns.svc", "ns.svc")
    assert not covers("injector.ns.svc", "other.ns.svc")
    wildcard = CA.issue_cert("*.sidecar-injector.svc")
    name = "sidecar-injector.sidecar-injector.svc"
    assert verify(CA.cert_pem.bytes(), chain(wildcard), name, NOW).problems == ()


def test_a_serving_secret_it_may_not_read_is_a_warning() -> None:
    results = run_checks(snapshot(serving_chain=Unverifiable("not verified: no permission")), NOW)
    assert ("serving certificate", "not verified: no permission") in failures(results)
    assert all(r.level != "fail" for r in results)


def test_a_broken_template_says_what_a_replica_starting_now_serves() -> None:
    broken = [Source("log-shipper.yaml", "containers: [", "log-shipper.yaml")]
    keeping = dataclasses.replace(
        install(args=["--profile=mesh=log-shipper"]),
        last_good_configmap="sidecar-injector-last-good",
    )
    good = Source("log-shipper.yaml", GOOD, "log-shipper.yaml")

    def fix(**changes: Any) -> str:
        results = run_checks(snapshot(templates=broken, **changes), NOW)
        [found] = [r for r in results if r.check == "templates"]
        assert found.level == "fail"
        return found.fix

    digest = load_sources([good]).templates["log-shipper"].digest
    served = fix(install=keeping, last_good=[good])
    assert served.endswith(
        "a replica that starts now serves the last good version from ConfigMap "
        f"sidecar-injector-last-good: log-shipper ({digest})"
    )
    # The profile still gets its template: no second failure for it.
    assert "profiles" not in [c for c, _ in failures(run_checks(
        snapshot(templates=broken, install=keeping, last_good=[good]), NOW
    ))]  # fmt: skip
    assert fix(install=keeping, last_good=[]).endswith(
        "a replica that starts now has no version of log-shipper (ConfigMap "
        "sidecar-injector-last-good holds no good version of it): pods asking for it are denied"
    )
    assert "(the last-good ConfigMap could not be read: forbidden)" in fix(
        install=keeping, last_good="forbidden"
    )
    assert "(the release keeps no last-good ConfigMap: audit.keepLastGood)" in fix()
    # A key that is not a template has its own error and is no template a pod asks for.
    readme = [*broken, Source("README.md", "notes", "README.md")]
    [found] = [
        r
        for r in run_checks(snapshot(templates=readme, install=keeping, last_good=[good]), NOW)
        if r.check == "templates"
    ]
    assert "README" not in found.fix and found.fix.endswith(f"log-shipper ({digest})")
