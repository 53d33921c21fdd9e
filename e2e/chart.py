"""What the e2e suite takes from the chart, rendered by the real helm with e2e/values.yaml."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.chart.helm import (
    Helm,
    Manifest,
    Values,
    flags,
    named,
    only,
    webhook_container,
    webhook_object,
)

RELEASE = "sidecar-injector-e2e"
NAMESPACE = "sidecar-injector-e2e"
"""Release and namespace of both modes: distinct from a real installation's names."""
VALUES = Path(__file__).with_name("values.yaml")
INJECT_CA_FROM = "cert-manager.io/inject-ca-from"


@dataclass(frozen=True)
class Release:
    """The rendered objects the apiserver, the kubelet and cert-manager would act on."""

    docs: list[Manifest]

    @property
    def container(self) -> Manifest:
        """The webhook container: its args are the service's command line."""
        return webhook_container(self.docs)

    @property
    def args(self) -> dict[str, str]:
        """The container's `--flag=value` args; the sub-command must be `serve`."""
        assert self.container["args"][0] == "serve"
        return flags(self.container)

    @property
    def pod_spec(self) -> Manifest:
        spec: Manifest = webhook_object(self.docs, "Deployment")["spec"]["template"]["spec"]
        return spec

    @property
    def webhook(self) -> Manifest:
        """The configuration's entry for Pods that ask with their own annotation (not a
        namespace profile's, not the helm-test one)."""
        configuration = only(self.docs, "MutatingWebhookConfiguration")
        entries = [
            w
            for w in configuration["webhooks"]
            if not w["name"].startswith("helm-test.") and ".profile." not in w["name"]
        ]
        assert len(entries) == 1
        entry: Manifest = entries[0]
        return entry

    @property
    def service_host(self) -> str:
        """The name the apiserver dials and verifies: `<service>.<namespace>.svc`."""
        ref = self.webhook["clientConfig"]["service"]
        service = named(self.docs, "Service", ref["name"])
        assert service["metadata"]["namespace"] == ref["namespace"]
        return f"{ref['name']}.{ref['namespace']}.svc"

    def validating_entry(self, kind: str) -> Manifest:
        """The ValidatingWebhookConfiguration's entry named `<kind>.<webhook name>`."""
        configuration = only(self.docs, "ValidatingWebhookConfiguration")
        entries = [w for w in configuration["webhooks"] if w["name"].startswith(f"{kind}.")]
        assert len(entries) == 1, f"expected one {kind} entry"
        entry: Manifest = entries[0]
        return entry

    @property
    def validating_webhook(self) -> Manifest:
        """The entry that judges edits of the templates ConfigMap."""
        return self.validating_entry("templates")

    @property
    def namespace_labels_webhook(self) -> Manifest:
        """The entry that judges namespaces' inject labels."""
        return self.validating_entry("namespace-labels")

    @property
    def validate_path(self) -> str:
        path: str = self.validating_webhook["clientConfig"]["service"]["path"]
        assert self.namespace_labels_webhook["clientConfig"]["service"]["path"] == path
        return path

    @property
    def service_port(self) -> int:
        """The Service port the apiserver dials (443 by default)."""
        port: int = self.webhook["clientConfig"]["service"]["port"]
        return port

    @property
    def path(self) -> str:
        path: str = self.webhook["clientConfig"]["service"]["path"]
        return path

    @property
    def timeout_seconds(self) -> int:
        seconds: int = self.webhook["timeoutSeconds"]
        return seconds

    @property
    def templates_configmap(self) -> Manifest:
        return named(self.docs, "ConfigMap", self._volume("templates")["configMap"]["name"])

    @property
    def templates(self) -> dict[str, str]:
        """The templates ConfigMap's data: `<name>.yaml` -> template text."""
        return dict(self.templates_configmap.get("data") or {})

    def templates_dir(self, directory: Path) -> Path:
        """The templates written as the files of a templates directory (`--templates-dir`
        of the offline commands)."""
        directory.mkdir(parents=True)
        for key, text in self.templates.items():
            (directory / key).write_text(text)
        return directory

    @property
    def tls_secret_name(self) -> str:
        name: str = self._volume("tls")["secret"]["secretName"]
        return name

    @property
    def serving_certificate(self) -> Manifest:
        """The cert-manager Certificate that writes the Secret the webhook mounts."""
        found = [
            c
            for c in self.docs
            if c["kind"] == "Certificate" and c["spec"]["secretName"] == self.tls_secret_name
        ]
        assert len(found) == 1, "one Certificate must write the mounted TLS Secret"
        return found[0]

    @property
    def ca_certificate(self) -> Manifest:
        """The Certificate whose CA cainjector copies into the caBundle."""
        configuration = only(self.docs, "MutatingWebhookConfiguration")
        source = configuration["metadata"]["annotations"][INJECT_CA_FROM]
        namespace, name = source.split("/")
        ca = named(self.docs, "Certificate", name)
        assert ca["metadata"]["namespace"] == namespace
        return ca

    def mount_path(self, volume: str) -> str:
        """Where the webhook container mounts this volume."""
        mounts = [m for m in self.container["volumeMounts"] if m["name"] == volume]
        assert len(mounts) == 1 and "subPath" not in mounts[0], "whole-directory mounts only"
        path: str = mounts[0]["mountPath"]
        return path

    def _volume(self, name: str) -> Manifest:
        volumes: list[Manifest] = [v for v in self.pod_spec["volumes"] if v["name"] == name]
        assert len(volumes) == 1
        return volumes[0]


def render(
    helm: Helm, values: Values | None = None, values_files: Sequence[Path] = (VALUES,)
) -> Release:
    """`helm template` of the chart as the e2e release."""
    return Release(
        helm.template(values, values_files=values_files, release=RELEASE, namespace=NAMESPACE)
    )
