"""Who gets injected: the opt-in annotation, namespace profiles, skip rules and idempotency."""

from __future__ import annotations

import functools
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from injector.errors import InjectionError, SkipReason
from injector.names import DNS1123_LABEL
from injector.near import nearest
from injector.types import JSON

DEFAULT_PREFIX = "sidecar-injector.io"
DEFAULT_EXCLUDED = frozenset({"kube-system", "kube-public", "kube-node-lease"})

ENABLED = "enabled"
"""The namespace label value (and profile) that means the default templates."""
DISABLED = "disabled"
"""The namespace label value that opts a whole namespace out, annotated pods included."""
UNKNOWN_PROFILE = "unknown-profile"
"""The path of the catch-all webhook entry: a namespace label that names no profile."""
RESERVED_PROFILES = frozenset({ENABLED, DISABLED, UNKNOWN_PROFILE, "true", "false"})
"""`true`/`false` too: a namespace label of either reads like the pod annotation's values."""
MAX_TEMPLATES = 32
"""Templates one pod may request: far above real use, low enough that a hostile annotation
cannot make a review (or its answer) expensive."""


@dataclass(frozen=True)
class Settings:
    """The operator's choices that shape every decision."""

    annotation_prefix: str = DEFAULT_PREFIX
    default_templates: tuple[str, ...] = ()
    exclude_namespaces: frozenset[str] = DEFAULT_EXCLUDED
    profiles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Profile name → templates, for namespaces labeled `<prefix>/inject=<profile>`."""
    native_sidecars: bool = False
    """Templates' `sidecars` become init containers with restartPolicy: Always (Kubernetes
    native sidecars), else regular containers."""

    # Cached: every review reads them.
    @functools.cached_property
    def inject_key(self) -> str:
        return f"{self.annotation_prefix}/inject"

    @functools.cached_property
    def status_key(self) -> str:
        return f"{self.annotation_prefix}/status"

    def param_prefix(self, template: str) -> str:
        """Annotations starting with this override the template's parameters."""
        return f"{self.annotation_prefix}/{template}."

    @functools.cached_property
    def key_prefix(self) -> str:
        """Every annotation the injector reads starts with this."""
        return f"{self.annotation_prefix}/"

    @functools.cached_property
    def routed_profiles(self) -> dict[str, tuple[str, ...]]:
        """Every namespace label value that selects templates, as the chart routes them:
        the profiles, plus `enabled` when default templates are set (built once)."""
        routed = dict(self.profiles)
        if self.default_templates:
            routed[ENABLED] = self.default_templates
        return routed


def check_profile_name(name: str) -> str | None:
    """Why `name` cannot name a profile, or None if it can."""
    if not DNS1123_LABEL.match(name):
        return f"profile name {name!r} must be a DNS-1123 label (lower-case letters, digits, '-')"
    if name in RESERVED_PROFILES:
        return f"profile name {name!r} is reserved ({', '.join(sorted(RESERVED_PROFILES))})"
    return None


def route(label: str | None, settings: Settings) -> str | None:
    """The profile a pod's admission is sent with, given its namespace's `<prefix>/inject`
    label, exactly as the chart's webhook entries route it: None (no label: the pod's own
    annotation entry), DISABLED (no entry matches: never sent), a routed profile, or
    UNKNOWN_PROFILE (the catch-all entry)."""
    if label is None or label == DISABLED:
        return label
    return label if label in settings.routed_profiles else UNKNOWN_PROFILE


def request_skip(request: Mapping[str, JSON]) -> SkipReason | None:
    """Skip anything that is not the creation of a Pod (subresources included)."""
    kind = request.get("kind") or {}
    if kind.get("kind") != "Pod" or kind.get("group", "") != "" or request.get("subResource"):
        return "not_pod"
    if request.get("operation") != "CREATE":
        return "not_create"
    return None


class Selection(NamedTuple):
    """What one pod asks for, once the skip rules let it through."""

    names: tuple[str, ...]
    """The templates, in order; empty when `error` says why there are none."""
    profile: str | None
    """The namespace profile that decided; None when the pod's own annotation did."""
    overrides: dict[str, list[Override]]
    """The override annotations by template name (`overrides`)."""
    warnings: tuple[str, ...] = ()
    """Override annotations of templates the pod does not request (`stray_overrides`)."""
    error: InjectionError | None = None


def select(
    annotations: Mapping[str, JSON],
    namespace: str,
    settings: Settings,
    profile: str | None,
    loaded: Container[str] = (),
) -> Selection | SkipReason:
    """The whole policy for one pod, in order: the skip rules, then what it requests (its own
    `inject` annotation decides alone; without it, the namespace's `profile`), then its
    override annotations; `loaded` are the templates that exist, for the warnings."""
    skip = pod_skip(annotations, namespace, settings, profile)
    if skip is not None:
        return skip
    names = requested(annotations, settings)
    if names is None:
        if profile is None:
            return "not_requested"
        names = profile_templates(profile, namespace, settings)
    else:
        profile = None
    if isinstance(names, InjectionError):
        return Selection((), profile, {}, (), names)
    if not names:
        return "not_requested"
    given = overrides(annotations, settings)
    if not given:
        return Selection(names, profile, given)
    stray = stray_overrides(given, names, settings, loaded)
    return Selection(names, profile, given, tuple(stray.values()))


def pod_skip(
    annotations: Mapping[str, JSON], namespace: str, settings: Settings, profile: str | None = None
) -> SkipReason | None:
    """Skip rules that look at the pod and its namespace, cheapest first."""
    if namespace in settings.exclude_namespaces or profile == DISABLED:
        return "excluded_namespace"
    if settings.status_key in annotations:
        return "already_injected"
    return None


def requested(
    annotations: Mapping[str, JSON], settings: Settings
) -> tuple[str, ...] | InjectionError | None:
    """Template names the pod's own annotation asks for, in its order, without repeats;
    None when the pod has no such annotation (then its namespace's profile decides)."""
    raw = annotations.get(settings.inject_key)
    if not isinstance(raw, str):
        return None
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
    unique: dict[str, None] = {}
    for part in value.split(","):  # a loop: generators cost more on every review
        name = part.strip()
        if name:
            unique[name] = None
    names = tuple(unique)
    if len(names) > MAX_TEMPLATES:
        return InjectionError(
            "too_many_templates",
            f"{settings.inject_key} names {len(names)} templates; at most {MAX_TEMPLATES} may be "
            "requested by one pod",
        )
    return names


def profile_templates(
    profile: str, namespace: str, settings: Settings
) -> tuple[str, ...] | InjectionError:
    """The templates a namespace's profile asks for, for a pod without its own annotation."""
    templates = settings.routed_profiles.get(profile)
    if templates is not None:
        return templates
    choices = ", ".join([*sorted(settings.routed_profiles), DISABLED])
    key = settings.inject_key
    if profile == ENABLED:
        what = (
            f"namespace {namespace!r} is labeled {key}={ENABLED}, which asks for the default "
            "templates, but none are configured (--default-templates)"
        )
    elif profile == UNKNOWN_PROFILE:
        # The catch-all entry's path cannot carry the value; the operator commands read it.
        what = (
            f"namespace {namespace!r} is labeled {key} with a value that names no profile "
            f"(kubectl sidecar-injector check, or explain, shows it)"
        )
    else:
        what = f"namespace {namespace!r} asks for profile {profile!r}, which is not configured"
    return InjectionError(
        "profile_not_found",
        f"{what}; label it {key}=<one of: {choices}>, remove the label, or set {key} on the pod",
    )


Override = tuple[str, str, JSON]
"""One parameter override annotation: its key, the parameter it names and its value."""


def overrides(annotations: Mapping[str, JSON], settings: Settings) -> dict[str, list[Override]]:
    """The parameter override annotations (`<prefix>/<template>.<param>`) by template name:
    one pass over the annotations serves every template the pod requests, and shows the
    overrides of templates it does not request."""
    found: dict[str, list[Override]] = {}
    scope = settings.key_prefix
    start = len(scope)
    for key, value in annotations.items():  # a loop: this runs every review
        if not key.startswith(scope):
            continue
        template, dot, param = key[start:].partition(".")
        if dot:
            entries = found.get(template)
            if entries is None:
                found[template] = [(key, param, value)]
            else:
                entries.append((key, param, value))
    return found


def stray_overrides(
    given: Mapping[str, list[Override]],
    names: Sequence[str],
    settings: Settings,
    loaded: Container[str] = (),
) -> dict[str, str]:
    """The `given` overrides of templates that are not among `names`, those the pod requests,
    each with its warning: each silently changes nothing. The warning names the requested
    template it is a typo of (within two edits), if any; `loaded` are the templates that
    exist: when only the override names one, the typo is in the request."""
    found: dict[str, str] = {}
    asked = ", ".join(names) or "no template"
    for template, entries in given.items():
        if template in names:
            continue
        near = nearest(template, names)
        for key, param, _ in entries:
            if near is None:
                fix = "it has no effect"
            elif template in loaded and near not in loaded:
                fix = f"did you mean to request {template!r} ({near!r} does not exist)?"
            else:
                fix = f"did you mean {settings.param_prefix(near)}{param}?"
            found[key] = (
                f"annotation {key} overrides template {template!r}, which this pod does not "
                f"request (it requests {asked}): {fix}"
            )
    return found
