"""Namespace profiles through a real kube-apiserver: the chart's webhook entries route each Pod
by its namespace's `sidecar-injector.io/inject` label, the Pod's own annotation still decides
first, and Pods that should not reach the webhook never do (the metrics count only the others).

Cluster mode only: locally there is no apiserver to match namespaces (the chart's routing is
checked offline in tests/chart/test_profiles.py, the service's answers in tests/service)."""

from __future__ import annotations

from collections.abc import Callable

from e2e.expect import assert_untouched, injected, names, status
from e2e.kubectl import DENIED
from e2e.metrics import Samples
from e2e.pods import APPS, PROFILE, bare, deployment
from e2e.target import Admission, Target

REQUESTS = "sidecar_injector_admission_requests_total"
PROFILE_TEMPLATES = ["trace-agent", "e2e-env"]


def reached(target: Target, create: Callable[[], list[Admission]]) -> tuple[list[Admission], float]:
    """The admissions `create` made and how many requests the webhook answered meanwhile."""
    before = target.webhook.metrics()
    admissions = create()
    after: Samples = target.webhook.metrics()
    return admissions, sum(after.delta(before, REQUESTS).values())


def admit(target: Target, name: str, inject: str | None, namespace: str) -> tuple[Admission, float]:
    """One bare Pod (`inject=None`: without the annotation) and the webhook calls it caused."""
    [admission], calls = reached(
        target, lambda: [target.apiserver.admit(bare(name, inject), namespace)]
    )
    return admission, calls


def test_a_profile_namespace_injects_its_templates_into_every_pod(cluster_target: Target) -> None:
    admission, calls = admit(cluster_target, "profiled", None, "e2e-profile")
    assert calls == 1
    assert injected(admission) == PROFILE_TEMPLATES
    assert status(admission.stored)["profile"] == PROFILE
    assert names(admission.stored) == ["app", "trace-agent"]


def test_the_pod_s_own_annotation_decides_first(cluster_target: Target) -> None:
    own, calls = admit(cluster_target, "own-choice", "log-shipper", "e2e-profile")
    assert calls == 1
    assert injected(own) == ["log-shipper"]
    assert "profile" not in status(own.stored)
    opted_out, calls = admit(cluster_target, "opted-out", "false", "e2e-profile")
    assert calls == 0, "matchConditions keep a Pod annotated false away from the webhook"
    assert_untouched(opted_out)


def test_a_deployment_in_a_profile_namespace_gets_the_profile(cluster_target: Target) -> None:
    manifest = deployment("traced", None)
    admissions, calls = reached(
        cluster_target, lambda: cluster_target.apiserver.create_deployment(manifest, "e2e-profile")
    )
    assert calls == len(admissions) == 2
    for admission in admissions:
        assert injected(admission) == PROFILE_TEMPLATES
        assert status(admission.stored)["profile"] == PROFILE
        assert admission.stored["metadata"]["generateName"].startswith("traced-")


def test_enabled_means_the_default_templates(cluster_target: Target) -> None:
    admission, calls = admit(cluster_target, "defaults", None, "e2e-enabled")
    assert calls == 1
    assert injected(admission) == ["log-shipper"]
    assert status(admission.stored)["profile"] == "enabled"


def test_a_disabled_namespace_never_reaches_the_webhook(cluster_target: Target) -> None:
    admission, calls = admit(cluster_target, "asks-anyway", "log-shipper", "e2e-disabled")
    assert calls == 0
    assert_untouched(admission)


def test_a_typo_in_the_label_is_an_error_not_silence(cluster_target: Target) -> None:
    denied, calls = admit(cluster_target, "typo", None, "e2e-typo")
    assert calls == 1
    assert not denied.allowed
    assert DENIED in denied.message
    assert "unknown-profile.profile.inject.sidecar-injector.io" in denied.message
    assert "names no profile" in denied.message
    assert f"<one of: {PROFILE}, enabled, disabled>" in denied.message
    annotated, _ = admit(cluster_target, "typo-own", "log-shipper", "e2e-typo")
    assert injected(annotated) == ["log-shipper"], "the Pod's own annotation still decides"


def test_unlabeled_namespaces_behave_as_before(cluster_target: Target) -> None:
    plain, calls = admit(cluster_target, "plain", None, APPS)
    assert calls == 0, "a Pod without the annotation never reaches the webhook"
    assert_untouched(plain)
    asked, calls = admit(cluster_target, "asked", "log-shipper", APPS)
    assert calls == 1
    assert injected(asked) == ["log-shipper"]
    assert "profile" not in status(asked.stored)
