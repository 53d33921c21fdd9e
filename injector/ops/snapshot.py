"""What `check` looks at, read from the cluster once: the release's Service and its ready
endpoints, the serving certificate, cert-manager's Certificates, the templates and last-good
ConfigMaps, the labeled namespaces. Permission and absence become values the checks judge."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from functools import cached_property

from lightkube import Client
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.admissionregistration_v1 import MutatingWebhook, ValidatingWebhook
from lightkube.resources.core_v1 import Namespace, Secret, Service
from lightkube.resources.discovery_v1 import EndpointSlice

from injector.loader import LoadResult, Source, load_sources, stand_ins
from injector.ops.install import Install, last_good_sources, template_sources
from injector.ops.kube import PAGE, AccessError, reading
from injector.template import Template

Certificate = create_namespaced_resource("cert-manager.io", "v1", "Certificate", "certificates")


class Unverifiable(str):
    """The serving certificate could not be read for want of a permission: a warning, since
    the install itself may be fine."""


@dataclass(frozen=True)
class Snapshot:
    """Everything the checks look at, read once."""

    install: Install
    service_type: str | None
    """The webhook Service's type; None when there is none."""
    ready_endpoints: int
    serving_chain: bytes | str
    """The serving Secret's tls.crt, or why it could not be read."""
    certificates: list[tuple[str, str | None, str]] | None
    """(name, secretName, Ready condition "True"/"False: reason") of cert-manager
    Certificates in the release namespace; None without cert-manager's CRDs."""
    templates: list[Source]
    labeled_namespaces: dict[str, str]
    """Namespace → its `<prefix>/inject` label."""
    last_good: list[Source] | str | None = None
    """The last-good ConfigMap's files, why it could not be read, or None: the release keeps
    none."""

    @cached_property
    def loaded(self) -> LoadResult:
        """The templates loaded and test-rendered as a replica would: once, for every check."""
        return load_sources(self.templates)

    @cached_property
    def fallback(self) -> dict[str, Template]:
        """What a replica starting now serves for each template that fails to load."""
        if not isinstance(self.last_good, list):
            return {}
        return stand_ins(self.loaded, self.last_good)


Webhook = MutatingWebhook | ValidatingWebhook


def webhook_entries(install: Install) -> list[Webhook]:
    entries: list[Webhook] = []
    if install.mutating is not None:
        entries += install.mutating.webhooks or []
    return entries + validating_entries(install)


def validating_entries(install: Install) -> list[ValidatingWebhook]:
    return install.validating.webhooks or [] if install.validating is not None else []


def snapshot(client: Client, install: Install) -> Snapshot:
    namespace = install.namespace
    service_type, ready = _service(client, install)
    key = install.config.settings.inject_key
    with reading(client, "list namespaces"):
        labeled = {
            ns.metadata.name: (ns.metadata.labels or {})[key]
            for ns in client.list(Namespace, labels={key: None}, chunk_size=PAGE)
            if ns.metadata and ns.metadata.name
        }
    return Snapshot(
        install,
        service_type,
        ready,
        _serving_chain(client, install),
        _certificates(client, namespace),
        template_sources(client, install),
        labeled,
        last_good_sources(client, install),
    )


def _service(client: Client, install: Install) -> tuple[str | None, int]:
    references = [
        w.clientConfig.service
        for w in webhook_entries(install)
        if w.clientConfig.service is not None
    ]
    if not references:
        return None, 0
    name = references[0].name
    try:
        with reading(client, f"get service {name} in namespace {install.namespace}"):
            service = client.get(Service, name, namespace=install.namespace)
    except AccessError as exc:
        if exc.code == 404:
            return None, 0
        raise
    with reading(client, f"list endpointslices in namespace {install.namespace}"):
        slices = client.list(
            EndpointSlice,
            namespace=install.namespace,
            labels={"kubernetes.io/service-name": name},
        )
        ready = sum(
            1
            for s in slices
            for e in s.endpoints or ()
            if e.conditions is None or e.conditions.ready is not False
        )
    return (service.spec.type if service.spec else None) or "ClusterIP", ready


def _serving_chain(client: Client, install: Install) -> bytes | str:
    if install.tls_secret is None:
        return "the webhook pods mount no serving Secret"
    name = install.tls_secret
    try:
        with reading(client, f"get secret {name} in namespace {install.namespace}"):
            secret = client.get(Secret, name, namespace=install.namespace)
    except AccessError as exc:
        if exc.code == 404:
            return f"the serving Secret {name} does not exist"
        if exc.code == 403:
            return Unverifiable(
                f"not verified: no permission to get secret {name} (the chart's reader Role "
                "grants it)"
            )
        raise
    encoded = (secret.data or {}).get("tls.crt")
    try:
        return base64.b64decode(encoded or "", validate=True) or f"Secret {name} has no tls.crt"
    except (binascii.Error, ValueError):
        return f"Secret {name}'s tls.crt is not base64"


def _certificates(client: Client, namespace: str) -> list[tuple[str, str | None, str]] | None:
    try:
        with reading(client, f"list certificates.cert-manager.io in namespace {namespace}"):
            found = list(client.list(Certificate, namespace=namespace))
    except AccessError as exc:
        if exc.code == 404:
            return None  # no cert-manager CRDs: TLS comes from tls.existingSecret
        raise
    result = []
    for certificate in found:
        spec = certificate.get("spec") or {}
        conditions = (certificate.get("status") or {}).get("conditions") or []
        ready = next((c for c in conditions if c.get("type") == "Ready"), None)
        state = "not issued yet" if ready is None else str(ready.get("status"))
        if ready is not None and ready.get("status") != "True":
            state = f"{ready.get('status')}: {ready.get('reason')}: {ready.get('message')}"
        name = certificate.metadata.name if certificate.metadata else "?"
        result.append((name or "?", spec.get("secretName"), state))
    return result
