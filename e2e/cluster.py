"""Cluster mode: the same scenarios through a real kube-apiserver, with kubectl and helm.

Off unless E2E_KUBECONFIG is set. Two shapes:
- in-cluster (default): `helm install` the chart (cert-manager must be installed); the webhook
  runs as the chart's Deployment and the apiserver calls it through its Service.
- external (E2E_WEBHOOK=external): for a bare kube-apiserver with no nodes. The service runs on
  this machine (as in local mode) and the chart is installed with `webhook.url` pointing at it
  and `webhook.caBundle` set to its CA, so the apiserver calls it over verified TLS.
- node (E2E_WEBHOOK=node): in-cluster on a cluster with a Ready node and E2E_IMAGE on it, without
  cert-manager: the suite's CA signs the serving Secret (made before the install) and is the
  caBundle; the suite renews the certificate by rewriting the Secret.

The chart is this checkout's, or a released one from an OCI registry (E2E_CHART=oci://...,
E2E_CHART_VERSION, E2E_REGISTRY_CA): then the webhook's image is the one the kubelet pulls
from that registry (the chart's default, or E2E_IMAGE), checked in the registry, not on the node.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import pytest
import yaml

from e2e import tools
from e2e.chart import NAMESPACE, RELEASE, VALUES, Release
from e2e.cluster_apiserver import POD_TIMEOUT, ClusterApiserver, owned_by
from e2e.kubectl import Kubectl, is_ready, last_line
from e2e.local import LocalInjector, started
from e2e.pki import CAIssuer
from e2e.pods import (
    APPS,
    INJECT,
    NAMESPACE_LABELS,
    NAMESPACES,
    Obj,
    random_suffix,
)
from e2e.target import Target
from e2e.webhooks import (
    EXTERNAL_HOST,
    InClusterWebhook,
    NodeWebhook,
    external_values,
    image_values,
    node_values,
)
from tests.chart.helm import CHART_DIR, Helm, load_script, only, webhook_object

INSTALL_TIMEOUT = "5m"
HELM_TIMEOUT = 600.0
NAMESPACE_GONE_TIMEOUT = 120.0
CONTROLLER_PROBE_TIMEOUT = 20.0
"""How long a Deployment may take to get its ReplicaSet. The controller-manager takes well under
a second; a bare apiserver never does, and this is what finding that out costs."""
SERVICE_ACCOUNT_TIMEOUT = 60.0
"""The controller-manager's ServiceAccount controller creates `default` in a new namespace."""
CA_INJECTION_TIMEOUT = 120.0
NODE_IMAGES = ("busybox:1.36.1",)
release_script = load_script("release")
"""scripts/release.py: its registry client tells whether an image tag is in the registry."""
release_script = load_script("release")
"""scripts/release.py: its registry client tells whether an image tag is in the registry."""
"""Images node mode runs besides E2E_IMAGE: the chart's `helm test` Pod and the node scenarios'
Pods and sidecars (e2e/values.yaml's e2e-ready-sidecar)."""


WebhookMode = Literal["in-cluster", "external", "service", "node"]
"""in-cluster: the chart's Deployment; node: the chart's Deployment with the suite's own TLS
(certManager.enabled=false) on a real kubelet; external: a process here, called at webhook.url;
service: a process here on 127.0.0.1:<Service port>, called through the chart's own Service made an
ExternalName for localhost (an apiserver without kube-proxy resolves it so)."""


@dataclass(frozen=True)
class ClusterConfig:
    """What the environment asks for (see e2e/README.md)."""

    kubeconfig: Path
    webhook: WebhookMode
    image: str
    keep: bool
    chart: str = ""
    """E2E_CHART: `oci://<registry>/<path>/sidecar-injector`; empty: this checkout's chart."""
    chart_version: str = ""
    registry_ca: str = ""
    """E2E_REGISTRY_CA: the CA of E2E_CHART's registry (helm --ca-file, the registry checks)."""
    upgrade_version: str = ""
    """E2E_UPGRADE_VERSION: the node scenario upgrades E2E_CHART to this version and back."""
    upgrade_image: str = ""
    """E2E_UPGRADE_IMAGE: the image of that upgrade (default: the new chart's own)."""

    @property
    def registry(self) -> str | None:
        """The host of E2E_CHART's registry, if the chart comes from one."""
        if not self.chart.startswith("oci://"):
            return None
        return self.chart.removeprefix("oci://").split("/", 1)[0]

    @property
    def external(self) -> bool:
        """The webhook is a process on this machine, not the chart's Deployment."""
        return self.webhook in ("external", "service")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ClusterConfig | None:
        kubeconfig = environ.get("E2E_KUBECONFIG", "")
        if not kubeconfig:
            return None
        webhook = environ.get("E2E_WEBHOOK", "in-cluster")
        assert webhook in get_args(WebhookMode), f"E2E_WEBHOOK={webhook!r}"
        return cls(
            Path(kubeconfig).expanduser(),
            webhook=webhook,  # type: ignore[arg-type]
            image=environ.get("E2E_IMAGE", ""),
            keep=environ.get("E2E_KEEP", "") == "1",
            chart=environ.get("E2E_CHART", ""),
            chart_version=environ.get("E2E_CHART_VERSION", ""),
            registry_ca=environ.get("E2E_REGISTRY_CA", ""),
            upgrade_version=environ.get("E2E_UPGRADE_VERSION", ""),
            upgrade_image=environ.get("E2E_UPGRADE_IMAGE", ""),
        )


@dataclass
class Cluster:
    """The cluster, its tools and the installed release."""

    config: ClusterConfig
    kubectl: Kubectl
    helm: Helm
    release: Release
    controllers: bool = False
    """Whether a controller-manager runs: found out, not assumed (see `probe_controllers`)."""
    native_sidecars: bool = False
    """Whether the apiserver keeps init containers' `restartPolicy: Always`."""
    values_file: Path = VALUES
    """The values `install` added to e2e/values.yaml."""

    def helm_run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """helm against the cluster; `--wait`s are bounded by their own --timeout."""
        result = subprocess.run(
            [str(self.helm.binary), f"--kubeconfig={self.config.kubeconfig}", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=HELM_TIMEOUT,
        )
        if check:
            assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stderr}"
        return result

    def has_nodes(self) -> bool:
        return bool(self.kubectl.get("nodes")["items"])

    def ready_nodes(self) -> list[Obj]:
        """The Nodes whose kubelet reports Ready."""
        nodes: list[Obj] = self.kubectl.get("nodes")["items"]
        return [node for node in nodes if is_ready(node)]

    def chart_source(self, version: str = "") -> list[str]:
        """The chart arguments of helm install, upgrade, show and pull: this checkout's chart,
        or E2E_CHART at `version` (default E2E_CHART_VERSION) trusting E2E_REGISTRY_CA."""
        if not self.config.chart:
            return [str(CHART_DIR)]
        args = [self.config.chart]
        version = version or self.config.chart_version
        if version:
            args += ["--version", version]
        if self.config.registry_ca:
            args += ["--ca-file", self.config.registry_ca]
        return args

    def chart_copy(self, target: Path) -> Path:
        """A copy of the installed chart to change: this checkout's, or E2E_CHART's pulled."""
        if not self.config.chart:
            shutil.copytree(CHART_DIR, target)
            return target
        with tempfile.TemporaryDirectory() as tmp:
            self.helm_run("pull", *self.chart_source(), "--untar", "--untardir", tmp)
            shutil.move(Path(tmp) / "sidecar-injector", target)
        return target

    def deployed_image(self, version: str = "", image: str | None = None) -> str:
        """The webhook's image: `image` (None: E2E_IMAGE), else the chart's own default (its
        image.repository and appVersion) at `version`."""
        image = self.config.image if image is None else image
        if image:
            return image
        values = yaml.safe_load(self.helm_run("show", "values", *self.chart_source(version)).stdout)
        chart = yaml.safe_load(self.helm_run("show", "chart", *self.chart_source(version)).stdout)
        found = values["image"]
        if found.get("digest"):
            return f"{found['repository']}@{found['digest']}"
        return f"{found['repository']}:{found.get('tag') or chart['appVersion']}"

    def registry_digest(self, image: str) -> str | None:
        """The digest E2E_CHART's registry holds for `image` (a tag or a digest), or None; a
        registry that cannot be asked raises release.py's one-line ReleaseError."""
        host, _, rest = image.partition("/")
        if "@" in rest:
            name, reference = rest.split("@", 1)
        else:
            name, _, reference = rest.rpartition(":")
        ca = Path(self.config.registry_ca) if self.config.registry_ca else None
        client = release_script.RegistryClient(host, ca)
        digest: str | None = client.digest(name, reference)
        return digest

    def from_registry(self, image: str) -> bool:
        """Whether the kubelet pulls `image` from E2E_CHART's registry."""
        return self.config.registry is not None and image.startswith(f"{self.config.registry}/")

    def registry_unfit(self) -> str | None:
        """Why E2E_CHART's release cannot be installed (None: it can): the chart version, or
        the image it deploys, not in the registry; the registry unreachable or untrusted. The
        same for E2E_UPGRADE_VERSION and its image."""
        releases: list[tuple[str, str | None]] = [(self.config.chart_version, None)]
        if self.config.upgrade_version:
            releases.append((self.config.upgrade_version, self.config.upgrade_image))
        for version, image in releases:
            source = self.chart_source(version)
            shown = self.helm_run("show", "chart", *source, check=False)
            if shown.returncode != 0:
                return f"chart {' '.join(source)}: {last_line(shown.stderr)}"
            wanted = self.deployed_image(version, image)
            if not self.from_registry(wanted):
                continue
            try:
                if self.registry_digest(wanted) is None:
                    return f"image {wanted} is not in the registry (no such tag or digest)"
            except release_script.ReleaseError as error:
                return str(error)
        return None

    def node_unfit(self) -> str | None:
        """Why node mode cannot run here (None: it can): no Ready Node, or E2E_IMAGE (or an image
        the suite's Pods use) not among the images the kubelet reports. Nothing can be pulled
        on a node without a registry, so the suite checks rather than waits for ErrImagePull;
        an image from E2E_CHART's registry is pulled by the kubelet, so it is looked up there."""
        nodes = self.ready_nodes()
        if not nodes:
            return "node mode needs a Ready Node (the cluster has none): see e2e/README.md"
        if not self.config.image and not self.config.chart:
            return "node mode installs E2E_IMAGE, which is not set: see e2e/README.md"
        if self.config.chart:
            unfit = self.registry_unfit()
            if unfit:
                return unfit
        local = [i for i in (self.deployed_image(), *NODE_IMAGES) if not self.from_registry(i)]
        for node in nodes:
            # An image replaced by a newer one under the same tag is listed with names: null.
            present = {
                name
                for image in node.get("status", {}).get("images") or ()
                for name in image.get("names") or ()
            }
            missing = [
                image
                for image in local
                if not ({image, f"docker.io/library/{image}", f"docker.io/{image}"} & present)
            ]
            if missing:
                name = node["metadata"]["name"]
                return (
                    f"node {name} lacks image(s) {', '.join(missing)}: build or import them first"
                )
        return None

    def install(self, values: Mapping[str, Any], root: Path, wait: bool) -> None:
        """`helm upgrade --install` of the chart with e2e/values.yaml, then `values`."""
        self.values_file = root / "values.yaml"
        self.values_file.write_text(yaml.safe_dump(dict(values)))
        self.upgrade(wait=wait)

    def upgrade(
        self,
        chart: Path | None = None,
        wait: bool = False,
        version: str = "",
        values: Mapping[str, Any] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """`helm upgrade --install` of `chart` (default: the installed chart's source, at
        `version`) with the values of `install`, then `values`."""
        source = self.chart_source(version) if chart is None else [str(chart)]
        args = ["upgrade", "--install", RELEASE, *source, "--namespace", NAMESPACE]
        args += ["--create-namespace", "--values", str(VALUES), "--values", str(self.values_file)]
        if values:
            extra = self.values_file.with_name("upgrade-values.yaml")
            extra.write_text(yaml.safe_dump(dict(values)))
            args += ["--values", str(extra)]
        if wait:
            args += ["--wait", "--timeout", INSTALL_TIMEOUT]
        return self.helm_run(*args)

    def create_namespaces(self) -> None:
        """The test namespaces, labelled for the namespaceSelector and with their profiles."""
        for name, profile in NAMESPACES.items():
            # A previous run's namespace may still be terminating.
            self.wait_gone("namespace", name)
            labels = dict(NAMESPACE_LABELS)
            if profile is not None:
                labels[INJECT] = profile
            self.kubectl.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": name, "labels": labels},
                }
            )

    def probe_controllers(self) -> bool:
        """Whether a controller-manager runs: a Deployment of no replicas gets a ReplicaSet.
        Run before the release is installed (its Pod template does not opt in anyway)."""
        labels = {"app.kubernetes.io/name": "e2e-controller-probe"}
        probe: Obj = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": f"e2e-controller-probe-{random_suffix()}", "namespace": APPS},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
                },
            },
        }
        created = self.kubectl.run(
            "create", "--filename=-", "--output=json", input=json.dumps(probe)
        )
        uid = json.loads(created.stdout)["metadata"]["uid"]
        try:
            deadline = time.monotonic() + CONTROLLER_PROBE_TIMEOUT
            while not owned_by(self.kubectl.get("replicasets", f"--namespace={APPS}"), uid):
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.25)
            return True
        finally:
            name = probe["metadata"]["name"]
            self.kubectl.run("delete", "deployment", name, f"--namespace={APPS}", check=False)

    def ensure_service_accounts(self) -> None:
        """Pods need their namespace's `default` ServiceAccount (the ServiceAccount admission
        plugin refuses them without). Its controller creates it shortly after the namespace;
        on a bare apiserver the suite creates it."""
        for name in NAMESPACES:
            if not self.controllers:
                found = self.kubectl.run(
                    "get", "serviceaccount", "default", "-n", name, check=False
                )
                if found.returncode != 0:
                    self.kubectl.run("create", "serviceaccount", "default", "-n", name)
                continue
            deadline = time.monotonic() + SERVICE_ACCOUNT_TIMEOUT
            while self.kubectl.run(
                "get", "serviceaccount", "default", "-n", name, check=False
            ).returncode:
                assert time.monotonic() < deadline, f"no ServiceAccount default in {name}"
                time.sleep(0.25)

    def probe_native_sidecars(self) -> bool:
        """Whether the apiserver keeps an init container's `restartPolicy: Always`: on by default
        from Kubernetes 1.29, behind the SidecarContainers feature gate in 1.28. Without it the
        field is dropped (or unknown, before 1.28) and Pods with an injected native sidecar are
        invalid or lose it. A server-side dry run, before the release is installed."""
        probe: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "e2e-native-sidecar-probe", "namespace": APPS},
            "spec": {
                "initContainers": [
                    {"name": "sidecar", "image": "busybox:1.36.1", "restartPolicy": "Always"}
                ],
                "containers": [{"name": "app", "image": "nginx:1.27"}],
            },
        }
        args = ["create", "--filename=-", "--output=json", "--dry-run=server"]
        result = self.kubectl.run(*args, input=json.dumps(probe), check=False)
        if result.returncode != 0:
            assert "restartPolicy" in result.stderr, f"probe Pod refused:\n{result.stderr}"
            return False
        stored = json.loads(result.stdout)
        return bool(stored["spec"]["initContainers"][0].get("restartPolicy") == "Always")

    @contextmanager
    def unvalidated(self, entry: str) -> Iterator[None]:
        """The validating entry `entry` ("namespace-labels", "templates") out of the stored
        ValidatingWebhookConfiguration for the body of the `with`, then back: how the suite
        puts back a test namespace's deliberate typo (e2e-typo's) after a scenario changed it,
        or lets a broken template edit through, as while the webhook is down."""
        name = only(self.release.docs, "ValidatingWebhookConfiguration")["metadata"]["name"]
        stored = self.kubectl.get("validatingwebhookconfiguration", name)
        [index] = [i for i, w in enumerate(stored["webhooks"]) if w["name"].startswith(f"{entry}.")]
        removed = stored["webhooks"][index]

        def patch(operation: dict[str, Any]) -> None:
            self.kubectl.run(
                "patch", "validatingwebhookconfiguration", name, "--type=json",
                f"--patch={json.dumps([operation])}",
            )  # fmt: skip

        patch({"op": "remove", "path": f"/webhooks/{index}"})
        try:
            yield
        finally:
            patch({"op": "add", "path": f"/webhooks/{index}", "value": removed})

    def wait_gone(self, kind: str, name: str) -> None:
        """Until the object is deleted, at most NAMESPACE_GONE_TIMEOUT."""
        timeout = f"--timeout={NAMESPACE_GONE_TIMEOUT:.0f}s"
        wait = ["wait", "--for=delete", f"{kind}/{name}", timeout]
        result = self.kubectl.run(*wait, check=False, timeout=NAMESPACE_GONE_TIMEOUT + 30)
        gone = result.returncode == 0 or "NotFound" in result.stderr or "not found" in result.stderr
        assert gone, f"{kind}/{name} still there after {timeout}:\n{result.stderr}"

    def wait_for_ca_bundle(self) -> None:
        """cert-manager's cainjector fills the webhook configuration's caBundle."""
        name = only(self.release.docs, "MutatingWebhookConfiguration")["metadata"]["name"]
        deadline = time.monotonic() + CA_INJECTION_TIMEOUT
        while True:
            configuration = self.kubectl.get("mutatingwebhookconfiguration", name)
            if all(w["clientConfig"].get("caBundle") for w in configuration["webhooks"]):
                return
            assert time.monotonic() < deadline, "cainjector never set the caBundle"
            time.sleep(2)

    def free_node(self) -> None:
        """Delete the Pods and Deployments earlier scenarios left in the test namespaces. On a
        real node they are scheduled, and those whose sidecar images are not there stay in
        ErrImagePull holding their CPU requests: on a small node the next Pod that must run
        (`helm test`'s, the node scenarios') would stay Pending with "Insufficient cpu"."""
        for name in NAMESPACES:
            self.kubectl.run(
                "delete", "deployments,pods", "--all", f"--namespace={name}", "--wait=true",
                f"--timeout={POD_TIMEOUT:.0f}s", timeout=POD_TIMEOUT + 30,
            )  # fmt: skip

    def wait_for_endpoints(self) -> None:
        """Until the webhook Service's Endpoints list every replica: `helm install --wait`
        returns once the Pods are Ready, but the endpoints controller publishes them later (in
        batches, like the 3 s a kube-proxy sees), and until then every opted-in Pod creation
        is refused with "no endpoints available" (failurePolicy: Fail)."""
        name = self.release.webhook["clientConfig"]["service"]["name"]
        replicas = webhook_object(self.release.docs, "Deployment")["spec"]["replicas"]
        deadline = time.monotonic() + POD_TIMEOUT
        while True:
            endpoints = self.kubectl.get("endpoints", name, f"--namespace={NAMESPACE}")
            subsets = endpoints.get("subsets") or []
            if sum(len(s.get("addresses", [])) for s in subsets) >= replicas:
                return
            assert time.monotonic() < deadline, f"{name} has no endpoints: {subsets}"
            time.sleep(0.5)

    def route_service_to_localhost(self) -> None:
        """Make the chart's Service an ExternalName for localhost: with no kube-proxy, the
        apiserver then dials 127.0.0.1 on the Service's port, verifying the serving
        certificate as `<service>.<namespace>.svc`, exactly the chart's clientConfig."""
        name = self.release.webhook["clientConfig"]["service"]["name"]
        patch = {
            "spec": {
                "type": "ExternalName",
                "externalName": "localhost",
                "clusterIP": None,
                "clusterIPs": None,
                "ipFamilies": None,
                "ipFamilyPolicy": None,
                "internalTrafficPolicy": None,
                "sessionAffinity": None,
            }
        }
        self.kubectl.run(
            "patch", "service", name, f"--namespace={NAMESPACE}", "--type=merge",
            f"--patch={json.dumps(patch)}",
        )  # fmt: skip

    def uninstall_release(self) -> None:
        """The release, with its cluster-wide webhook configuration; nothing if not installed."""
        result = self.helm_run(
            "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", check=False
        )
        assert result.returncode == 0 or "not found" in result.stderr, result.stderr

    def uninstall(self) -> None:
        """Leave the cluster as found: the release and the namespaces removed and gone, so the
        next run need not wait for them."""
        self.uninstall_release()
        namespaces = (*NAMESPACES, NAMESPACE)
        for name in namespaces:
            self.kubectl.run("delete", "namespace", name, "--wait=false", check=False)
        if not self.controllers:
            kinds = self.kubectl.run(
                "api-resources", "--namespaced", "--verbs=list,delete", "--output=name"
            ).stdout.split()
            for name in namespaces:
                self.finish_namespace_deletion(name, kinds)
        for name in namespaces:
            self.wait_gone("namespace", name)

    def finish_namespace_deletion(self, name: str, kinds: list[str]) -> None:
        """What the namespace controller does, for a bare apiserver that has none (its deleted
        namespaces would stay Terminating): delete everything in it, then its finalizer."""
        found = self.kubectl.run("get", "namespace", name, "--output=json", check=False)
        if found.returncode != 0:
            return
        self.kubectl.run(
            "delete", ",".join(kinds), "--all", f"--namespace={name}", "--ignore-not-found"
        )
        namespace = json.loads(found.stdout)
        namespace["spec"]["finalizers"] = []
        finalize = f"/api/v1/namespaces/{name}/finalize"
        self.kubectl.run("replace", "--raw", finalize, "--filename=-", input=json.dumps(namespace))


@contextmanager
def connect(config: ClusterConfig, helm: Helm, release: Release) -> Iterator[Cluster]:
    """The cluster with its test namespaces and what it can do; they and the release are
    removed afterwards."""
    kubectl = Kubectl(tools.kubectl(), config.kubeconfig)
    found = Cluster(config, kubectl, helm, release)
    if config.webhook == "node":
        unfit = found.node_unfit()
        if unfit:
            pytest.skip(unfit)
    try:
        found.create_namespaces()
        found.controllers = found.probe_controllers()
        found.ensure_service_accounts()
        found.native_sidecars = found.probe_native_sidecars()
        yield found
    finally:
        if not config.keep:
            found.uninstall()


@contextmanager
def install_target(found: Cluster, root: Path) -> Iterator[Target]:
    """Install the release (in-cluster, or pointing at a local process) and target it."""
    with ExitStack() as stack:
        if found.config.external:
            url = found.config.webhook == "external"
            port = 0 if url else found.release.service_port
            injector: LocalInjector = stack.enter_context(
                started(found.release, root / "injector", [EXTERNAL_HOST], port)
            )
            values = external_values(
                found.release, injector.service.port, injector.ca.bundle, url=url
            )
            if not found.config.keep:
                # Before the process stops: the webhook configuration must not outlive it.
                stack.callback(found.uninstall_release)
            found.install(values, root, wait=False)
            if not url:
                found.route_service_to_localhost()
            webhook: LocalInjector | InClusterWebhook = injector
        elif found.config.webhook == "node":
            # The Secret must exist before the install: the Pods mount it.
            found.kubectl.apply(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
            )
            node = NodeWebhook(
                found.kubectl, found.release, CAIssuer(found.release.ca_certificate["spec"])
            )
            node.write_secret()
            found.install(
                node_values(found.config.image, node.ca.bundle, found.release), root, wait=True
            )
            found.wait_for_endpoints()
            webhook = node
        else:
            found.install(image_values(found.config.image), root, wait=True)
            found.wait_for_ca_bundle()
            found.wait_for_endpoints()
            webhook = InClusterWebhook(found.kubectl, found.release)
        apiserver = ClusterApiserver(
            found.kubectl,
            found.controllers,
            found.native_sidecars,
            found.release.templates_configmap,
        )
        yield Target("cluster", apiserver, webhook)
