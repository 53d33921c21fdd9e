"""Finding an install in a cluster: the webhook Deployment in the release namespace, the flags
its pods run with (parsed by `serve`'s own parser), and the objects the chart made with it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TypeVar

from lightkube import Client
from lightkube.core.client import LabelSelector
from lightkube.models.core_v1 import Container
from lightkube.resources.admissionregistration_v1 import (
    MutatingWebhookConfiguration,
    ValidatingWebhookConfiguration,
)
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap

from injector.catalog import Catalog
from injector.loader import Source, load_sources, object_sources, stand_ins
from injector.ops.kube import AccessError, reading
from injector.service.config import Config, ConfigError, add_arguments, load

PART_OF: LabelSelector = {"app.kubernetes.io/part-of": "sidecar-injector"}
WEBHOOK: LabelSelector = {**PART_OF, "app.kubernetes.io/component": "webhook"}
W = TypeVar("W", MutatingWebhookConfiguration, ValidatingWebhookConfiguration)
TEMPLATES_VOLUME = "templates"
TLS_VOLUME = "tls"
LAST_GOOD_VOLUME = "last-good"
"""The chart's names for the webhook pod's two volumes."""


@dataclass(frozen=True)
class Install:
    """One release of the chart, as the cluster holds it."""

    namespace: str
    release: str
    deployment: Deployment
    container: Container
    config: Config
    """The service's flags as its pods run them: prefix, default templates, profiles..."""
    mutating: MutatingWebhookConfiguration | None
    validating: ValidatingWebhookConfiguration | None
    templates_configmap: str
    tls_secret: str | None
    last_good_configmap: str | None = None
    """The last-good ConfigMap the webhook falls back to; None when the release keeps none."""


def find(client: Client, namespace: str) -> Install:
    """The install in `namespace`; AccessError (with where to look) when there is none."""
    with reading(client, f"list deployments in namespace {namespace}"):
        found = sorted(
            client.list(Deployment, namespace=namespace, labels=WEBHOOK),
            key=lambda d: d.metadata.name if d.metadata and d.metadata.name else "",
        )
    if not found:
        raise AccessError(
            f"no sidecar-injector release in namespace {namespace!r}"
            f"{_elsewhere(client)}; pass --release-namespace"
        )
    deployment = found[0]
    assert deployment.metadata is not None and deployment.spec is not None
    labels = deployment.metadata.labels or {}
    release = labels.get("app.kubernetes.io/instance", "")
    pod = deployment.spec.template.spec
    assert pod is not None
    container = next((c for c in pod.containers if (c.args or [""])[0] == "serve"), None)
    if container is None:
        raise AccessError(f"deployment {deployment.metadata.name} runs no `serve` container")
    volumes = {v.name: v for v in pod.volumes or ()}
    configmap = volumes.get(TEMPLATES_VOLUME)
    secret = volumes.get(TLS_VOLUME)
    last_good = volumes.get(LAST_GOOD_VOLUME)
    if configmap is None or configmap.configMap is None or not configmap.configMap.name:
        raise AccessError(f"deployment {deployment.metadata.name} mounts no templates ConfigMap")
    selector: LabelSelector = {**PART_OF, "app.kubernetes.io/instance": release}
    return Install(
        namespace=namespace,
        release=release,
        deployment=deployment,
        container=container,
        config=service_config(container),
        mutating=_first(client, MutatingWebhookConfiguration, selector),
        validating=_first(client, ValidatingWebhookConfiguration, selector),
        templates_configmap=configmap.configMap.name,
        tls_secret=secret.secret.secretName if secret and secret.secret else None,
        last_good_configmap=last_good.configMap.name if last_good and last_good.configMap else None,
    )


def service_config(container: Container) -> Config:
    """The flags the container passes to `serve`, with its environment, resolved exactly as
    the service resolves them."""
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    args, _ = parser.parse_known_args((container.args or [])[1:])
    environ = {e.name: e.value for e in container.env or () if e.value is not None}
    try:
        return load(args, environ)
    except ConfigError as exc:
        raise AccessError(f"the webhook's own flags are invalid: {exc}") from None


def template_sources(client: Client, install: Install) -> list[Source]:
    """The templates ConfigMap's files, as the kubelet would mount them."""
    name = install.templates_configmap
    with reading(client, f"get configmap {name} in namespace {install.namespace}"):
        configmap = client.get(ConfigMap, name, namespace=install.namespace)
    return object_sources(configmap.data, configmap.binaryData)


def last_good_sources(client: Client, install: Install) -> list[Source] | str | None:
    """The last-good ConfigMap's files; None when the release keeps none, or why it could not
    be read (absent: nothing to fall back to)."""
    name = install.last_good_configmap
    if name is None:
        return None
    try:
        with reading(client, f"get configmap {name} in namespace {install.namespace}"):
            configmap = client.get(ConfigMap, name, namespace=install.namespace)
    except AccessError as exc:
        return str(exc)
    return object_sources(configmap.data, configmap.binaryData)


def catalog_of(client: Client, install: Install) -> Catalog:
    """The templates ConfigMap loaded exactly as a replica starting now loads it: a template
    that fails to load served from the last-good ConfigMap when that holds a version."""
    result = load_sources(template_sources(client, install))
    last_good = last_good_sources(client, install) if result.errors else None
    if not isinstance(last_good, list):
        return Catalog.from_load(result)
    return Catalog.from_load(result, stand_ins(result, last_good))


def _first(client: Client, kind: type[W], labels: LabelSelector) -> W | None:
    with reading(client, f"list {kind.__name__.lower()}s"):
        found = list(client.list(kind, labels=labels))
    return found[0] if found else None


def _elsewhere(client: Client) -> str:
    """Where releases are, when listing across namespaces is allowed."""
    try:
        with reading(client, "list deployments"):
            others = sorted(
                {
                    d.metadata.namespace
                    for d in client.list(Deployment, namespace="*", labels=WEBHOOK)
                    if d.metadata and d.metadata.namespace
                }
            )
    except AccessError:
        return ""
    return f" (releases found in: {', '.join(others)})" if others else ""
