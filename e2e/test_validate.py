"""Edits of the templates ConfigMap judged by POST /validate, as the apiserver sends them: a
broken edit is refused naming key and line, a dry run previews it, a good edit goes through and
reaches new Pods. In cluster mode also: `kubectl apply` and `kubectl patch` print the refusal,
no other ConfigMap ever reaches the webhook, and with the webhook down edits still go through.

Namespace inject labels too: a typo is refused with the nearest value (`kubectl label`, and
`kubectl create` of a manifest), valid values and removal are accepted. In cluster mode also:
no other namespace edit reaches the webhook, and with the webhook down a typo goes through and
`sidecar-injector check` names it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from e2e.chart import NAMESPACE
from e2e.cluster import Cluster
from e2e.expect import container
from e2e.kubectl import DENIED
from e2e.local import LocalInjector
from e2e.metrics import Samples, labels
from e2e.pods import APPS, INJECT, LABELS, NAMESPACE_LABELS, PROFILE, bare
from e2e.target import Target, wait_until
from tests.chart.helm import only

VALIDATIONS = "sidecar_injector_config_validations_total"
SHIPPER = "log-shipper.yaml"
IMAGE = "fluent/fluent-bit:3.1.4"
BROKEN_IMAGE = '    image: "{{ params.image }}"'
TYPO = '    image: "{{ params.imge }}"'
WEBHOOK_NAME = "templates.inject.sidecar-injector.io"


def broken(data: dict[str, str]) -> dict[str, str]:
    """log-shipper with an expression naming an undeclared parameter."""
    assert BROKEN_IMAGE in data[SHIPPER]
    return {**data, SHIPPER: data[SHIPPER].replace(BROKEN_IMAGE, TYPO)}


def typo_line(data: dict[str, str]) -> int:
    return data[SHIPPER].splitlines().index(BROKEN_IMAGE) + 1


def judged(target: Target, before: Samples, kind: str = "configmap") -> dict[str, float]:
    """The validations of this kind counted since `before`, by result."""
    delta = target.webhook.metrics().delta(before, VALIDATIONS)
    return {dict(key)["result"]: value for key, value in delta.items() if dict(key)["kind"] == kind}


def shipper_image(target: Target) -> str:
    pod = target.apiserver.admit(bare("validated"), APPS).stored
    image: str = container(pod, "log-shipper")["image"]
    return image


def restored(target: Target) -> Iterator[dict[str, str]]:
    """The templates as installed; the ConfigMap and the webhook's copy are put back after."""
    data = target.webhook.templates()
    yield data
    assert target.apiserver.update_templates(data).allowed
    target.webhook.edit_templates(data)
    wait_until(
        lambda: shipper_image(target) == IMAGE, target.webhook, "the installed templates back"
    )


@pytest.fixture
def installed(target: Target) -> Iterator[dict[str, str]]:
    yield from restored(target)


@pytest.fixture
def cluster_installed(cluster_target: Target) -> Iterator[dict[str, str]]:
    yield from restored(cluster_target)


def test_a_broken_edit_is_refused_naming_key_and_line(
    target: Target, installed: dict[str, str]
) -> None:
    before = target.webhook.metrics()
    refused = target.apiserver.update_templates(broken(installed))
    assert not refused.allowed
    expected = (
        f"{SHIPPER}:{typo_line(installed)}: containers[0].image: params.imge is not declared in "
        "parameters (declared: cpu, image, logLevel, memory)"
    )
    assert expected in refused.message
    if target.mode == "cluster":
        assert f'admission webhook "{WEBHOOK_NAME}" {DENIED}' in refused.message
    assert judged(target, before) == {"denied": 1.0}
    assert shipper_image(target) == IMAGE, "nothing changed"


def test_a_dry_run_previews_the_answer(target: Target, installed: dict[str, str]) -> None:
    before = target.webhook.metrics()
    assert not target.apiserver.update_templates(broken(installed), dry_run=True).allowed
    assert target.apiserver.update_templates(installed, dry_run=True).allowed
    assert judged(target, before) == {"denied": 1.0, "allowed": 1.0}


def test_a_good_edit_goes_through_and_reaches_new_pods(
    target: Target, installed: dict[str, str]
) -> None:
    edited = {**installed, SHIPPER: installed[SHIPPER].replace(IMAGE, "fluent/fluent-bit:3.2.2")}
    applied = target.apiserver.update_templates(edited)
    assert applied.allowed and applied.warnings == ()
    target.webhook.edit_templates(edited)  # what the kubelet does with the stored ConfigMap
    wait_until(
        lambda: shipper_image(target) == "fluent/fluent-bit:3.2.2",
        target.webhook,
        "the edit reaching new pods",
    )


def test_removing_a_template_the_defaults_need_is_allowed_with_a_warning(
    target: Target, installed: dict[str, str]
) -> None:
    without = {key: text for key, text in installed.items() if key != SHIPPER}
    applied = target.apiserver.update_templates(without, dry_run=True)
    assert applied.allowed
    assert applied.warnings == (
        "the edit removes template 'log-shipper', which the default templates names: pods "
        "that rely on it will be denied until it is back",
    )


# --- cluster mode only: kubectl's own commands, the matchConditions, failurePolicy Ignore ---


def templates_configmap(cluster: Cluster) -> str:
    name: str = cluster.release.templates_configmap["metadata"]["name"]
    return name


def test_kubectl_apply_and_patch_print_the_refusal(
    cluster: Cluster, cluster_target: Target, cluster_installed: dict[str, str]
) -> None:
    installed = cluster_installed
    name = templates_configmap(cluster)
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "data": broken(installed),
    }
    line = f"{SHIPPER}:{typo_line(installed)}: containers[0].image: params.imge is not declared"
    applied = cluster.kubectl.run(
        "apply", "--server-side", "--force-conflicts", "--filename=-",
        input=json.dumps(manifest), check=False,
    )  # fmt: skip
    assert applied.returncode != 0 and line in applied.stderr, applied.stderr
    patch = {"data": {SHIPPER: broken(installed)[SHIPPER]}}
    patched = cluster.kubectl.run(
        "patch", "configmap", name, f"--namespace={NAMESPACE}", "--type=merge",
        f"--patch={json.dumps(patch)}", check=False,
    )  # fmt: skip
    assert patched.returncode != 0 and line in patched.stderr, patched.stderr
    stored = cluster.kubectl.get("configmap", name, f"--namespace={NAMESPACE}")["data"]
    assert stored == installed, "the stored ConfigMap is unchanged"


def test_no_other_configmap_reaches_the_webhook(cluster: Cluster, cluster_target: Target) -> None:
    before = cluster_target.webhook.metrics()
    other = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "e2e-unrelated", "namespace": NAMESPACE},
        "data": {"broken.yaml": "containers: ["},
    }
    cluster.kubectl.run("apply", "--filename=-", input=json.dumps(other))
    other["data"] = {"broken.yaml": "still: ["}
    cluster.kubectl.run("replace", "--filename=-", input=json.dumps(other))
    cluster.kubectl.run("delete", "configmap", "e2e-unrelated", f"--namespace={NAMESPACE}")
    assert judged(cluster_target, before) == {}
    # The series exists (it is created at start-up): the counts above were read, not assumed.
    samples = cluster_target.webhook.metrics()
    assert samples.get(VALIDATIONS, **dict(labels(kind="configmap", result="allowed"))) >= 0


def test_with_the_webhook_down_an_edit_still_goes_through(
    cluster_target: Target, cluster_installed: dict[str, str]
) -> None:
    installed = cluster_installed
    webhook = cluster_target.webhook
    if not isinstance(webhook, LocalInjector):
        pytest.skip("the in-cluster webhook is not stopped by the suite")
    with webhook.down():
        applied = cluster_target.apiserver.update_templates(broken(installed))
    assert applied.allowed, "failurePolicy Ignore: fixing templates never waits on the webhook"
    assert judged(cluster_target, Samples({}, frozenset())) == {}, "a fresh process judged none"


def test_a_helm_upgrade_to_a_newer_template_format_is_not_refused(
    cluster: Cluster, cluster_target: Target, cluster_installed: dict[str, str], tmp_path: Path
) -> None:
    """The new chart's ConfigMap is applied while this version's pods still judge edits: a
    template key only the new version knows must not fail the upgrade."""
    newer = tmp_path / "chart"
    cluster.chart_copy(newer)
    chart = yaml.safe_load((newer / "Chart.yaml").read_text())
    chart["version"] = f"{chart['version']}-next"
    (newer / "Chart.yaml").write_text(yaml.safe_dump(chart))
    (newer / "files" / "examples" / "future.yaml").write_text(
        "fromTheFuture: true\ncontainers: [{name: future, image: 'future:1'}]\n"
    )
    name = templates_configmap(cluster)
    # The last-good ConfigMap's data is the audit's, not the chart's: an upgrade that changes
    # the object (its chart label) must leave it. What the audit would write, written here.
    last_good = f"{name.removesuffix('-templates')}-last-good"
    kept = {"log-shipper.yaml": cluster.release.templates["log-shipper.yaml"]}
    cluster.kubectl.run(
        "patch", "configmap", last_good, f"--namespace={NAMESPACE}", "--type=merge",
        f"--patch={json.dumps({'data': kept})}",
    )  # fmt: skip
    try:
        upgraded = cluster.upgrade(newer)
        assert upgraded.returncode == 0, upgraded.stderr
        stored = cluster.kubectl.get("configmap", name, f"--namespace={NAMESPACE}")
        assert "future.yaml" in stored["data"]
        assert stored["metadata"]["labels"]["helm.sh/chart"].endswith("-next")
        held = cluster.kubectl.get("configmap", last_good, f"--namespace={NAMESPACE}")
        assert held["metadata"]["labels"]["helm.sh/chart"].endswith("-next")
        assert held["data"]["log-shipper.yaml"] == kept["log-shipper.yaml"]
        # Going back is the same case the other way round: also not refused.
    finally:
        # Waited for where the chart's pods serve: the new chart's label rolled them, and the
        # next scenarios read every replica's metrics (external and service modes run none).
        restored = cluster.upgrade(wait=not cluster.config.external)
        assert restored.returncode == 0, restored.stderr
    after = cluster.kubectl.get("configmap", name, f"--namespace={NAMESPACE}")
    assert "future.yaml" not in after["data"]
    assert (
        after["metadata"]["labels"]["helm.sh/chart"]
        == only(cluster.release.docs, "MutatingWebhookConfiguration")["metadata"]["labels"][
            "helm.sh/chart"
        ]
    )
    refused = cluster_target.apiserver.update_templates(broken(cluster_installed))
    assert not refused.allowed, "this version's own ConfigMap is judged again"


# --- namespace inject labels ---

NAMESPACE_WEBHOOK = "namespace-labels.inject.sidecar-injector.io"
LABEL_TYPO = "e2e-observabilty"
TYPO_MESSAGE = (
    f'namespace "{LABELS}": label {INJECT}={LABEL_TYPO} names no profile; valid values: '
    f'disabled, {PROFILE}, enabled (did you mean "{PROFILE}"?)'
)


def namespaces_judged(target: Target, before: Samples) -> dict[str, float]:
    """The namespace labels judged since `before`, by result."""
    return judged(target, before, "namespace")


@pytest.fixture
def unlabeled(target: Target) -> Iterator[str]:
    """The scenarios' namespace, without the inject label before and after."""
    assert target.apiserver.label_namespace(LABELS, None).allowed
    yield LABELS
    assert target.apiserver.label_namespace(LABELS, None).allowed


@pytest.fixture
def cluster_unlabeled(cluster_target: Target) -> Iterator[str]:
    assert cluster_target.apiserver.label_namespace(LABELS, None).allowed
    yield LABELS
    assert cluster_target.apiserver.label_namespace(LABELS, None).allowed


def test_a_label_typo_is_refused_with_the_nearest_value(target: Target, unlabeled: str) -> None:
    before = target.webhook.metrics()
    refused = target.apiserver.label_namespace(unlabeled, LABEL_TYPO)
    assert not refused.allowed
    assert TYPO_MESSAGE in refused.message
    if target.mode == "cluster":
        assert f'admission webhook "{NAMESPACE_WEBHOOK}" {DENIED}' in refused.message
    assert namespaces_judged(target, before) == {"denied": 1.0}
    # Nothing changed: the namespace still has no label (removing it reaches no webhook).
    assert target.apiserver.label_namespace(unlabeled, None).allowed


def test_profiles_disabled_enabled_and_removal_are_accepted(target: Target, unlabeled: str) -> None:
    """e2e/values.yaml configures default templates, so `enabled` names them."""
    before = target.webhook.metrics()
    for value in (PROFILE, "disabled", "enabled", None):
        applied = target.apiserver.label_namespace(unlabeled, value)
        assert applied.allowed and applied.warnings == (), (value, applied.message)
    # Locally every edit is sent; the apiserver's matchConditions keep the removal away.
    assert namespaces_judged(target, before) == {
        "allowed": 3.0 if target.mode == "cluster" else 4.0
    }


def test_creating_a_namespace_with_a_bad_label_is_refused(target: Target) -> None:
    def manifest(value: str) -> dict[str, object]:
        return {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "e2e-created", "labels": {INJECT: value, **NAMESPACE_LABELS}},
        }

    before = target.webhook.metrics()
    refused = target.apiserver.create_namespace(manifest("enabeld"))
    assert not refused.allowed
    assert (
        f'namespace "e2e-created": label {INJECT}=enabeld names no profile; valid values: '
        f'disabled, {PROFILE}, enabled (did you mean "enabled"?)'
    ) in refused.message
    assert target.apiserver.create_namespace(manifest(PROFILE), dry_run=True).allowed
    assert namespaces_judged(target, before) == {"denied": 1.0, "allowed": 1.0}


# --- cluster mode only: matchConditions, failurePolicy Ignore, `check` ---


def test_other_namespace_edits_never_reach_the_webhook(
    cluster: Cluster, cluster_target: Target, cluster_unlabeled: str
) -> None:
    name = cluster_unlabeled
    assert cluster_target.apiserver.label_namespace(name, PROFILE).allowed
    before = cluster_target.webhook.metrics()
    kubectl = cluster.kubectl
    kubectl.run("annotate", "namespace", name, "e2e.sidecar-injector.io/note=hello", "--overwrite")
    kubectl.run("label", "namespace", name, "e2e.sidecar-injector.io/team=a", "--overwrite")
    kubectl.run("label", "namespace", name, f"{INJECT}={PROFILE}", "--overwrite")  # same value
    stored = kubectl.get("namespace", name)
    kubectl.run("replace", "--filename=-", input=json.dumps(stored))  # re-applied as it is
    kubectl.run("label", "namespace", name, "e2e.sidecar-injector.io/team-")
    kubectl.run("annotate", "namespace", name, "e2e.sidecar-injector.io/note-")
    kubectl.run("label", "namespace", APPS, "e2e.sidecar-injector.io/team=b", "--overwrite")
    kubectl.run("label", "namespace", APPS, "e2e.sidecar-injector.io/team-")
    assert cluster_target.apiserver.label_namespace(name, None).allowed  # removal
    assert namespaces_judged(cluster_target, before) == {}
    # The series exist (created at start-up): the counts above were read, not assumed.
    samples = cluster_target.webhook.metrics()
    for result in ("allowed", "denied"):
        assert samples.get(VALIDATIONS, **dict(labels(kind="namespace", result=result))) >= 0


def test_with_the_webhook_down_a_typo_goes_through_and_check_names_it(
    cluster: Cluster, cluster_target: Target, cluster_unlabeled: str
) -> None:
    webhook = cluster_target.webhook
    if not isinstance(webhook, LocalInjector):
        pytest.skip("the in-cluster webhook is not stopped by the suite")
    name = cluster_unlabeled
    with webhook.down():
        applied = cluster_target.apiserver.label_namespace(name, LABEL_TYPO)
    assert applied.allowed, "failurePolicy Ignore: labeling never waits on the webhook"
    assert namespaces_judged(cluster_target, Samples({}, frozenset())) == {}, "none judged"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "sidecar-injector"), "check", "-o", "json",
         f"--kubeconfig={cluster.config.kubeconfig}", f"--release-namespace={NAMESPACE}"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    failed = [
        check
        for check in json.loads(result.stdout)["checks"]
        if check["check"] == "namespace labels" and check["level"] == "fail"
    ]
    [typo] = [c for c in failed if f"namespace {name} " in c["message"]]
    assert f"is labeled {INJECT}={LABEL_TYPO}, which names no profile" in typo["message"]
    assert typo["fix"] == f"kubectl label namespace {name} {INJECT}={PROFILE} --overwrite"
