"""What only a real cluster shows (cert-manager's caBundle injection, `helm test`, that local mode's
apiserver stores what a real one stores), and offline checks that what cluster mode installs is
what the chart accepts."""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.chart import INJECT_CA_FROM, NAMESPACE, RELEASE, Release, render
from e2e.cluster import Cluster, ClusterConfig
from e2e.kubectl import Kubectl
from e2e.local import LocalInjector
from e2e.pki import CAIssuer
from e2e.pods import APPS, TOKEN_VOLUME, Obj, bare, deployment, rich
from e2e.target import Admission, Target
from e2e.tools import COMMAND
from e2e.webhooks import NodeWebhook, external_values, image_values, node_values
from injector.service.sample import REPLICASET_CONTROLLER
from tests.chart.helm import CHART_DIR, REPO_ROOT, Helm, only

EXAMPLES = REPO_ROOT / "examples"


def test_the_webhook_configuration_trusts_the_ca(cluster: Cluster, cluster_target: Target) -> None:
    """In-cluster: cainjector copied the chart's CA; external and node: the caBundle value
    given (the suite's CA)."""
    name = only(cluster.release.docs, "MutatingWebhookConfiguration")["metadata"]["name"]
    stored = cluster.kubectl.get("mutatingwebhookconfiguration", name)
    bundles = {base64.b64decode(w["clientConfig"]["caBundle"]) for w in stored["webhooks"]}
    # The apiserver reaches every entry at webhook.url, or through the chart's own Service.
    by_url = cluster.config.webhook == "external"
    assert all(("url" in w["clientConfig"]) == by_url for w in stored["webhooks"])
    if isinstance(cluster_target.webhook, LocalInjector | NodeWebhook):
        expected = cluster_target.webhook.ca.bundle
    else:
        secret = cluster.release.ca_certificate["spec"]["secretName"]
        data = cluster.kubectl.get("secret", secret, f"--namespace={NAMESPACE}")["data"]
        expected = base64.b64decode(data["ca.crt"])
    assert bundles == {expected}


@pytest.mark.parametrize("native", [False, True], ids=["classic", "native"])
def test_the_apiserver_keeps_either_placement_of_a_portable_sidecar(
    cluster: Cluster, native: bool
) -> None:
    """`inject` places the example Job's db-proxy both ways; the real apiserver validates the
    Job's pod template and stores each placement as it is (server-side dry run)."""
    if native and not cluster.native_sidecars:
        pytest.skip("the cluster's apiserver has no native sidecars")
    injected = subprocess.run(
        [COMMAND, "inject", "-f", str(EXAMPLES / "manifests" / "job.yaml"), "--templates-dir",
         str(EXAMPLES / "templates"), f"--native-sidecars={str(native).lower()}"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    job = yaml.safe_load(injected)
    job["metadata"]["namespace"] = APPS
    args = ["create", "--filename=-", "--output=json", "--dry-run=server"]
    stored = json.loads(cluster.kubectl.run(*args, input=json.dumps(job)).stdout)
    spec = stored["spec"]["template"]["spec"]
    if native:
        assert [(c["name"], c["restartPolicy"]) for c in spec["initContainers"]] == [
            ("db-proxy", "Always")
        ]
        assert [c["name"] for c in spec["containers"]] == ["migrate"]
    else:
        assert [c["name"] for c in spec["containers"]] == ["migrate", "db-proxy"]
        assert "initContainers" not in spec


def test_the_local_apiserver_stores_what_the_real_one_stores(
    local: LocalInjector, cluster_target: Target
) -> None:
    """Local mode's apiserver-like client defaults and admits Pods as the real apiserver does:
    the same Pods, injected or not, are stored alike by both (up to server-set metadata and
    random names), Deployment Pods included."""
    pods = [
        bare("same-bare"),
        rich("same-rich", "log-shipper,trace-agent"),
        bare("same-several", "trace-agent,log-shipper,e2e-env", {"e2e-env.region": "us"}),
        bare("same-absent", None),
    ]
    if cluster_target.apiserver.native_sidecars:
        pods.append(rich("same-native", "envoy-proxy"))
    apiserver = local.apiserver()
    try:
        for pod in pods:
            real = cluster_target.apiserver.admit(pod, APPS)
            assert_stored_alike(apiserver.admit(real.submitted, APPS), real)
        for real in cluster_target.apiserver.create_deployment(
            deployment("same", "trace-agent"), APPS
        ):
            here = apiserver.admit(real.submitted, APPS, user=REPLICASET_CONTROLLER)
            assert_stored_alike(here, real)
    finally:
        apiserver.close()


def assert_stored_alike(local: Admission, real: Admission) -> None:
    found = differences(comparable(local.stored), comparable(real.stored))
    assert not found, "local vs real apiserver:\n" + "\n".join(found)


def comparable(pod: Obj) -> Obj:
    """Without what only a real cluster sets (uid, timestamps, status, a generated name, the
    node a scheduler bound it to) and with the token volume's random name made constant."""
    pod = copy.deepcopy(pod)
    pod.pop("status", None)
    # Bound by a scheduler (on a cluster with nodes) once stored, maybe before it is read back.
    pod["spec"].pop("nodeName", None)
    metadata = pod["metadata"]
    for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields"):
        metadata.pop(key, None)
    if "generateName" in metadata:
        metadata.pop("name", None)
    text = re.sub(f"{TOKEN_VOLUME}[a-z0-9]+", f"{TOKEN_VOLUME}<random>", json.dumps(pod))
    found: Obj = json.loads(text)
    return found


def differences(local: Any, real: Any, path: str = "") -> list[str]:
    """One line per differing path, for a readable failure."""
    if isinstance(local, dict) and isinstance(real, dict):
        found = []
        for key in sorted(set(local) | set(real)):
            if key not in real:
                found.append(f"{path}/{key}: only local: {json.dumps(local[key])}")
            elif key not in local:
                found.append(f"{path}/{key}: only real: {json.dumps(real[key])}")
            else:
                found += differences(local[key], real[key], f"{path}/{key}")
        return found
    if isinstance(local, list) and isinstance(real, list) and len(local) == len(real):
        return [
            d
            for i, pair in enumerate(zip(local, real, strict=True))
            for d in differences(*pair, f"{path}/{i}")
        ]
    if local != real:
        return [f"{path}: local {json.dumps(local)}, real {json.dumps(real)}"]
    return []


def test_helm_test_passes(cluster: Cluster, cluster_target: Target) -> None:
    """The chart's own test Pod asks for an injection and checks it got it."""
    if cluster.config.external or not cluster.has_nodes():
        pytest.skip("helm test runs a Pod: it needs nodes and the in-cluster webhook")
    cluster.free_node()
    # The test Pod is kept after it passed (hook-delete-policy before-hook-creation), so
    # `--logs` reads it, as an operator would.
    result = cluster.helm_run("test", RELEASE, f"--namespace={NAMESPACE}", "--logs")
    assert "injected: SIDECAR_INJECTOR_HELM_TEST=" in result.stdout


# --- Offline: what cluster mode would install is accepted by the chart (runs everywhere) ---


def test_the_external_webhook_values_render(helm: Helm, release: Release) -> None:
    """The values cluster mode installs for a bare apiserver pass the chart's schema and send
    the apiserver to the local process, trusting its CA, without cert-manager."""
    ca = CAIssuer(release.ca_certificate["spec"])
    values = external_values(release, 18443, ca.bundle)
    rendered = render(helm, values)
    assert not [d for d in rendered.docs if d["kind"] in ("Certificate", "Issuer")]
    configuration = only(rendered.docs, "MutatingWebhookConfiguration")
    assert INJECT_CA_FROM not in configuration["metadata"].get("annotations", {})
    base = f"https://127.0.0.1:18443{release.path}"
    for webhook in configuration["webhooks"]:
        client = webhook["clientConfig"]
        profile = ".profile." in webhook["name"]
        assert client["url"] == base or (profile and client["url"].startswith(f"{base}/"))
        assert base64.b64decode(client["caBundle"]) == ca.bundle
    assert rendered.tls_secret_name == release.tls_secret_name
    assert rendered.args == release.args, "the same service flags as in local mode"


@pytest.mark.parametrize(
    "image",
    [
        "sidecar-injector:e2e",
        "localhost:5000/team/sidecar-injector:0.1.0",
        f"registry.example/sidecar-injector@sha256:{'0' * 64}",
    ],
    ids=["kind-load", "registry-port", "digest"],
)
def test_e2e_image_sets_the_chart_image(helm: Helm, image: str) -> None:
    assert render(helm, image_values(image)).container["image"] == image


def test_cluster_mode_is_configured_from_the_environment(tmp_path: Path) -> None:
    assert ClusterConfig.from_env({}) is None
    config = ClusterConfig.from_env(
        {"E2E_KUBECONFIG": str(tmp_path / "kubeconfig"), "E2E_WEBHOOK": "external"}
    )
    assert config == ClusterConfig(tmp_path / "kubeconfig", "external", "", False)
    assert config.external
    service = ClusterConfig.from_env(
        {"E2E_KUBECONFIG": str(tmp_path / "kubeconfig"), "E2E_WEBHOOK": "service"}
    )
    assert service is not None and service.external and service.webhook == "service"
    node = ClusterConfig.from_env(
        {"E2E_KUBECONFIG": "k", "E2E_WEBHOOK": "node", "E2E_IMAGE": "localhost/si:test"}
    )
    assert node is not None and not node.external and node.image == "localhost/si:test"


def test_a_released_chart_is_configured_from_the_environment(helm: Helm, release: Release) -> None:
    """E2E_CHART and friends: helm installs the OCI chart at its version trusting the CA, and
    only images of that registry are looked up there (the others on the node)."""
    config = ClusterConfig.from_env(
        {
            "E2E_KUBECONFIG": "k",
            "E2E_WEBHOOK": "node",
            "E2E_CHART": "oci://127.0.0.1:5000/charts/sidecar-injector",
            "E2E_CHART_VERSION": "0.1.0",
            "E2E_REGISTRY_CA": "/ca.crt",
            "E2E_UPGRADE_VERSION": "0.1.1",
        }
    )
    assert config is not None and config.registry == "127.0.0.1:5000"
    assert (config.image, config.upgrade_version, config.upgrade_image) == ("", "0.1.1", "")
    cluster = Cluster(config, Kubectl(Path("kubectl"), Path("k")), helm, release)
    assert cluster.chart_source() == [
        config.chart, "--version", "0.1.0", "--ca-file", "/ca.crt",
    ]  # fmt: skip
    assert cluster.chart_source("0.1.1")[:3] == [config.chart, "--version", "0.1.1"]
    assert cluster.from_registry("127.0.0.1:5000/sidecar-injector/sidecar-injector:0.1.0")
    assert not cluster.from_registry("busybox:1.36.1")
    local = Cluster(ClusterConfig(Path("k"), "node", "x:1", False), cluster.kubectl, helm, release)
    assert local.chart_source() == [str(CHART_DIR)] and local.config.registry is None


def test_the_node_values_render(helm: Helm, release: Release) -> None:
    """What node mode installs passes the chart's schema: no cert-manager objects, the suite's
    Secret mounted, its CA in every entry, the Service path kept, E2E_IMAGE."""
    ca = CAIssuer(release.ca_certificate["spec"])
    rendered = render(helm, node_values("localhost/sidecar-injector:test", ca.bundle, release))
    assert not [d for d in rendered.docs if d["kind"] in ("Certificate", "Issuer")]
    for webhook in only(rendered.docs, "MutatingWebhookConfiguration")["webhooks"]:
        assert "service" in webhook["clientConfig"]
        assert base64.b64decode(webhook["clientConfig"]["caBundle"]) == ca.bundle
    assert rendered.tls_secret_name == release.tls_secret_name
    assert rendered.container["image"] == "localhost/sidecar-injector:test"
