"""Pods created through the webhook: who gets what, what is refused, what is left alone."""

from __future__ import annotations

import json

import pytest

from e2e.expect import (
    app_mounts,
    assert_untouched,
    container,
    digests,
    env,
    injected,
    labels,
    names,
    own_volumes,
    pod_annotations,
    status,
)
from e2e.pods import APPS, EXCLUDED, TOKEN_PATH, TOKEN_VOLUME, bare, deployment, recreate, rich
from e2e.target import Target, require_native_sidecars

LOG_DIR = "/var/log/app"


def test_a_bare_pod_gets_the_log_shipper(target: Target) -> None:
    admission = target.apiserver.admit(bare("bare"), APPS)
    pod = admission.stored
    assert names(pod) == ["app", "log-shipper"]
    assert own_volumes(pod) == ["app-logs"]
    assert app_mounts(container(pod, "app")) == {LOG_DIR: "app-logs"}
    shipper = container(pod, "log-shipper")
    assert shipper["image"] == "fluent/fluent-bit:3.1.4"
    assert f"--tag={APPS}.{admission.submitted['metadata']['name']}" in shipper["args"]
    assert labels(pod)["sidecar-injector.io/log-shipper"] == "enabled"
    assert pod_annotations(pod)["fluentbit.io/exclude"] == "true"
    assert admission.warnings == ()
    record = status(pod)
    assert record["containers"] == ["log-shipper"]
    assert record["volumes"] == ["app-logs"]
    served = digests(target.webhook.debug_templates())
    assert record["templates"] == [{"name": "log-shipper", "digest": served["log-shipper"]}]


def test_a_rich_pod_keeps_its_own_values(target: Target) -> None:
    admission = target.apiserver.admit(rich("rich", "log-shipper,trace-agent"), APPS)
    pod = admission.stored
    assert names(pod) == ["app", "worker", "log-shipper", "trace-agent"]
    assert names(pod, "initContainers") == ["migrate"]
    app, worker = (container(pod, n) for n in ("app", "worker"))
    migrate = container(pod, "migrate", "initContainers")
    # Template env goes to the app containers only, never to init containers or sidecars.
    for own in (app, worker):
        assert env(own)["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4317"
        # The apiserver defaults the fieldRef's apiVersion after the webhook's patch.
        node_name = {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}
        assert env(own)["K8S_NODE_NAME"] == node_name
        assert app_mounts(own)[LOG_DIR] == "app-logs"
    for other in (migrate, container(pod, "log-shipper"), container(pod, "trace-agent")):
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in env(other)
    assert env(migrate) == {"DB_HOST": "postgres"}
    # The pod's own values win, and the user is told.
    assert env(app)["OTEL_SERVICE_NAME"] == "shop-api"
    assert env(worker)["OTEL_SERVICE_NAME"] == "shop"
    assert env(app)["DB_PASSWORD"] == {"secretKeyRef": {"name": "db", "key": "password"}}
    assert labels(pod)["sidecar-injector.io/log-shipper"] == "custom"
    assert pod_annotations(pod)["team.example.com/owner"] == "payments"
    assert any("OTEL_SERVICE_NAME" in w and "'app'" in w for w in admission.warnings)
    assert own_volumes(pod) == ["config", "cache", "app-logs"]
    assert injected(admission) == ["log-shipper", "trace-agent"]


def test_pods_of_a_deployment_get_a_native_sidecar(target: Target) -> None:
    """generateName, ownerReferences and the token volume as the apiserver adds it."""
    require_native_sidecars(target)
    manifest = deployment("checkout", "envoy-proxy", params={"envoy-proxy.concurrency": "4"})
    admissions = target.apiserver.create_deployment(manifest, APPS)
    assert len(admissions) == 2
    for admission in admissions:
        pod = admission.stored
        metadata = pod["metadata"]
        assert metadata["generateName"].startswith("checkout-")
        assert [o["kind"] for o in metadata["ownerReferences"]] == ["ReplicaSet"]
        assert names(pod, "initContainers") == ["envoy-proxy"]
        envoy = container(pod, "envoy-proxy", "initContainers")
        assert envoy["restartPolicy"] == "Always"
        assert "--concurrency=4" in envoy["args"]
        assert f"--service-node={metadata['generateName']}" in envoy["args"]
        tokens = [v for v in pod["spec"]["volumes"] if v["name"].startswith(TOKEN_VOLUME)]
        assert len(tokens) == 1 and "projected" in tokens[0]
        # The webhook adds no token mount of its own; the apiserver's ServiceAccount plugin,
        # run again because the webhook changed the Pod, mounts the one token volume into the
        # injected container too.
        token_mount = {"name": tokens[0]["name"], "mountPath": TOKEN_PATH, "readOnly": True}
        for entry in (container(pod, "app"), envoy):
            assert [m for m in entry["volumeMounts"] if m["mountPath"] == TOKEN_PATH] == [
                token_mount
            ]
        assert admission.patch is None or TOKEN_PATH not in json.dumps(admission.patch)
        assert injected(admission) == ["envoy-proxy"]


def test_a_native_sidecar_starts_before_the_pods_init_containers(target: Target) -> None:
    require_native_sidecars(target)
    pod = target.apiserver.admit(rich("native", "envoy-proxy"), APPS).stored
    assert names(pod, "initContainers") == ["envoy-proxy", "migrate"]
    envoy = container(pod, "envoy-proxy", "initContainers")
    assert envoy["restartPolicy"] == "Always"
    assert envoy["ports"][0]["containerPort"] == 9901
    assert envoy["startupProbe"]["httpGet"]["port"] == 9901
    assert names(pod) == ["app", "worker"]
    assert labels(pod)["sidecar-injector.io/proxy"] == "envoy"


def test_a_portable_sidecar_is_stored_where_the_service_placed_it(target: Target) -> None:
    """e2e/values.yaml sets config.nativeSidecars: the template's `sidecars` entry becomes a
    native sidecar, before the pod's own init containers, and the apiserver keeps it there."""
    require_native_sidecars(target)
    admission = target.apiserver.admit(rich("portable", "db-proxy"), APPS)
    pod = admission.stored
    assert names(pod, "initContainers") == ["db-proxy", "migrate"]
    assert container(pod, "db-proxy", "initContainers")["restartPolicy"] == "Always"
    assert names(pod) == ["app", "worker"]
    assert status(pod)["initContainers"] == ["db-proxy"] and status(pod)["containers"] == []
    for app in ("app", "worker"):
        assert env(container(pod, app))["DB_HOST"] == "127.0.0.1"
    migrate = env(container(pod, "migrate", "initContainers"))
    assert migrate["DB_HOST"] == "postgres" and "DB_PORT" not in migrate, "app containers only"


def test_several_templates_in_the_order_asked(target: Target) -> None:
    require_native_sidecars(target)
    inject = "trace-agent,log-shipper,envoy-proxy,e2e-env"
    admission = target.apiserver.admit(bare("several", inject), APPS)
    pod = admission.stored
    assert names(pod) == ["app", "trace-agent", "log-shipper"]
    assert names(pod, "initContainers") == ["envoy-proxy"]
    assert injected(admission) == inject.split(",")
    expected_env = {
        "E2E_REGION": "eu",
        "E2E_REPLICAS": "3",
        "E2E_VERBOSE": "false",
        "E2E_TEMPLATE": "e2e-env",
    }
    assert env(container(pod, "app")).items() >= expected_env.items()
    assert app_mounts(container(pod, "app")) == {LOG_DIR: "app-logs", "/var/run/e2e": "e2e-scratch"}
    assert labels(pod)["e2e.sidecar-injector.io/region"] == "eu"


def test_true_asks_for_the_default_templates(target: Target) -> None:
    admission = target.apiserver.admit(bare("defaults", "true"), APPS)
    assert injected(admission) == ["log-shipper"]


def test_parameter_overrides(target: Target) -> None:
    require_native_sidecars(target)
    params = {
        "log-shipper.logLevel": "debug",
        "log-shipper.memory": "64Mi",
        "envoy-proxy.adminPort": "15000",
        "e2e-env.region": "us",
        "e2e-env.verbose": "true",
    }
    pod = target.apiserver.admit(
        bare("overrides", "log-shipper,envoy-proxy,e2e-env", params), APPS
    ).stored
    shipper = container(pod, "log-shipper")
    assert "--log-level=debug" in shipper["args"]
    assert shipper["resources"]["limits"]["memory"] == "64Mi"
    envoy = container(pod, "envoy-proxy", "initContainers")
    assert envoy["ports"][0]["containerPort"] == 15000
    assert env(container(pod, "app"))["E2E_REGION"] == "us"
    assert env(container(pod, "app"))["E2E_VERBOSE"] == "true"
    assert labels(pod)["e2e.sidecar-injector.io/region"] == "us"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"log-shipper.logLevel": "loud"},
            ["sidecar-injector.io/log-shipper.logLevel", "'loud'", "debug, info, warn, error"],
        ),
        (
            {"log-shipper.colour": "blue"},
            ["sidecar-injector.io/log-shipper.colour", "no such parameter", "logLevel"],
        ),
        ({"e2e-env.replicas": "12"}, ["sidecar-injector.io/e2e-env.replicas", "'12'"]),
    ],
    ids=["not-in-enum", "unknown-parameter", "above-max"],
)
def test_an_invalid_override_is_denied(
    target: Target, params: dict[str, str], expected: list[str]
) -> None:
    template = next(iter(params)).split(".")[0]
    admission = target.apiserver.admit(bare("bad-param", template, params), APPS)
    assert not admission.allowed
    for part in expected:
        assert part in admission.message


def test_an_override_of_a_template_not_requested_is_admitted_with_a_warning(
    target: Target,
) -> None:
    admission = target.apiserver.admit(
        bare("stray-override", "log-shipper", {"log-shiper.logLevel": "debug"}), APPS
    )
    assert admission.allowed
    assert injected(admission) == ["log-shipper"]
    assert "--log-level=info" in container(admission.stored, "log-shipper")["args"]
    assert admission.warnings == (
        "annotation sidecar-injector.io/log-shiper.logLevel overrides template 'log-shiper', "
        "which this pod does not request (it requests log-shipper): did you mean "
        "sidecar-injector.io/log-shipper.logLevel?",
    )


@pytest.mark.parametrize("inject", ["false", "", None], ids=["false", "empty", "absent"])
def test_opted_out_pods_are_left_alone(target: Target, inject: str | None) -> None:
    assert_untouched(target.apiserver.admit(bare("opted-out", inject), APPS))


def test_excluded_namespaces_are_left_alone(target: Target) -> None:
    assert_untouched(target.apiserver.admit(bare("excluded"), EXCLUDED))


def test_an_unknown_template_is_denied_naming_the_available_ones(target: Target) -> None:
    available = sorted(key.removesuffix(".yaml") for key in target.webhook.templates())
    available.remove("helm-test")  # the chart's own: hidden from users' lists
    for inject in ("log-shiper", "log-shipper,log-shiper"):
        admission = target.apiserver.admit(bare("typo", inject), APPS)
        assert not admission.allowed
        expected = f"template 'log-shiper' not found; available: {', '.join(available)}"
        assert expected in admission.message


def test_a_name_clash_with_the_pod_is_denied(target: Target) -> None:
    pod = bare("clash")
    pod["spec"]["containers"].append({"name": "log-shipper", "image": "busybox:1.36.1"})
    admission = target.apiserver.admit(pod, APPS)
    assert not admission.allowed
    assert "template 'log-shipper' adds container 'log-shipper'" in admission.message
    assert "rename the pod's container" in admission.message


def test_a_name_clash_between_templates_is_denied(target: Target) -> None:
    admission = target.apiserver.admit(bare("clash", "log-shipper,e2e-clash"), APPS)
    assert not admission.allowed
    assert (
        "template 'e2e-clash' adds container 'log-shipper', but template 'log-shipper', "
        "requested before it, adds a container of that name too"
    ) in admission.message


def test_a_dry_run_is_answered_like_a_creation(target: Target) -> None:
    dry = target.apiserver.admit(bare("dry-run", "log-shipper,trace-agent"), APPS, dry_run=True)
    real = target.apiserver.admit(bare("dry-run", "log-shipper,trace-agent"), APPS)
    for key in ("containers", "initContainers"):
        assert names(dry.stored, key) == names(real.stored, key)
    assert status(dry.stored) == status(real.stored)


def test_an_injected_pod_reviewed_again_gets_no_patch(target: Target) -> None:
    """reinvocationPolicy IfNeeded, or a pod copied with its status annotation."""
    require_native_sidecars(target)
    first = target.apiserver.admit(bare("first", "log-shipper,envoy-proxy"), APPS)
    again = target.apiserver.admit(recreate(first.stored, "again"), APPS)
    assert_untouched(again)
    assert names(again.stored) == ["app", "log-shipper"]
    assert names(again.stored, "initContainers") == ["envoy-proxy"]
