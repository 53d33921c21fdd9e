"""Who gets injected: the opt-in annotation, skip rules and idempotency."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from injector.errors import InjectionError, SkipReason
from injector.types import JSON

DEFAULT_PREFIX = "sidecar-injector.io"
DEFAULT_EXCLUDED = frozenset({"kube-system", "kube-public", "kube-node-lease"})


@dataclass(frozen=True)
class Settings:
    """The operator's choices that shape every decision."""

    annotation_prefix: str = DEFAULT_PREFIX
    default_templates: tuple[str, ...] = ()
    exclude_namespaces: frozenset[str] = DEFAULT_EXCLUDED

    @property
    def inject_key(self) -> str:
        return f"{self.annotation_prefix}/inject"

    @property
    def status_key(self) -> str:
        return f"{self.annotation_prefix}/status"

    def param_prefix(self, template: str) -> str:
        """Annotations starting with this override the template's parameters."""
        return f"{self.annotation_prefix}/{template}."


def request_skip(request: Mapping[str, JSON]) -> SkipReason | None:
    """Skip anything that is not the creation of a Pod (subresources included)."""
    kind = request.get("kind") or {}
    if kind.get("kind") != "Pod" or kind.get("group", "") != "" or request.get("subResource"):
        return "not_pod"
    if request.get("operation") != "CREATE":
        return "not_create"
    return None


def pod_skip(
    annotations: Mapping[str, JSON], namespace: str, settings: Settings
) -> SkipReason | None:
    """Skip rules that look at the pod itself, cheapest first."""
    if namespace in settings.exclude_namespaces:
        return "excluded_namespace"
    if settings.status_key in annotations:
        return "already_injected"
    return None


def requested(
    annotations: Mapping[str, JSON], settings: Settings
) -> tuple[str, ...] | InjectionError:
    """Template names the pod asks for, in its order, without repeats."""
    raw = annotations.get(settings.inject_key)
    if not isinstance(raw, str):
        return ()
    value = raw.strip()
    if value.lower() in ("", "false"):
        return ()
    if value.lower() == "true":
        if not settings.default_templates:
            return InjectionError(
                "no_default_templates",
                f'{settings.inject_key}: "true" asks for the default templates, but none are '
                "configured (--default-templates); name the templates instead, "
                f'e.g. {settings.inject_key}: "log-shipper"',
            )
        return settings.default_templates
    names = (name.strip() for name in value.split(","))
    return tuple(dict.fromkeys(name for name in names if name))
