"""Edits of the templates ConfigMap judged by POST /validate, as the apiserver sends them: a
broken edit is refused naming key and line, a dry run previews it, a good edit goes through and
reaches new Pods. In cluster mode also: `kubectl apply` and `kubectl patch` print the refusal,
no other ConfigMap ever reaches the webhook, and with the webhook down edits still go through.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from e2e.chart import NAMESPACE
from e2e.cluster import DENIED, Cluster
from e2e.expect import container
from e2e.local import LocalInjector
from e2e.metrics import Samples, labels
from e2e.pods import APPS, bare
from e2e.target import Target, wait_until
from tests.chart.helm import CHART_DIR, only

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


def judged(target: Target, before: Samples) -> dict[str, float]:
    """The validations counted since `before`, by result."""
    delta = target.webhook.metrics().delta(before, VALIDATIONS)
    return {dict(key)["result"]: value for key, value in delta.items()}


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
    assert cluster_target.webhook.metrics().get(VALIDATIONS, **dict(labels(result="allowed"))) >= 0


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
    shutil.copytree(CHART_DIR, newer)
    chart = yaml.safe_load((newer / "Chart.yaml").read_text())
    chart["version"] = f"{chart['version']}-next"
    (newer / "Chart.yaml").write_text(yaml.safe_dump(chart))
    (newer / "files" / "examples" / "future.yaml").write_text(
        "fromTheFuture: true\ncontainers: [{name: future, image: 'future:1'}]\n"
    )
    name = templates_configmap(cluster)
    try:
        upgraded = cluster.upgrade(newer)
        assert upgraded.returncode == 0, upgraded.stderr
        stored = cluster.kubectl.get("configmap", name, f"--namespace={NAMESPACE}")
        assert "future.yaml" in stored["data"]
        assert stored["metadata"]["labels"]["helm.sh/chart"].endswith("-next")
        # Going back is the same case the other way round: also not refused.
    finally:
        restored = cluster.upgrade(CHART_DIR)
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
