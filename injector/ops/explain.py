"""`explain`: whether a pod is (or a manifest's pods would be) injected, and if not the first
reason in the order the apiserver and the webhook decide, with what to change — plus the near
misses that otherwise fail silently (a typo in the annotation key, another injector's prefix,
the annotation on a Deployment instead of its pod template)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from injector.catalog import Catalog
from injector.engine import decide, shape_problem
from injector.errors import ErrorReason
from injector.fleet import Fleet, PodMeta, read_status
from injector.near import nearest
from injector.ops.selectors import opted_out, selected
from injector.policy import (
    DISABLED,
    Settings,
    overrides,
    requested,
    route,
    stray_overrides,
)
from injector.types import JSON, Obj

FIXES: dict[ErrorReason, str] = {
    "template_not_found": "name an existing template in the annotation (or have the operator "
    "add it to the templates ConfigMap)",
    "template_load_failed": "the template is broken in the ConfigMap: the operator fixes it "
    "(sidecar-injector validate shows where)",
    "invalid_parameter": "give the override annotation a valid value, or remove it",
    "parameter_locked": "remove the override annotation: the operator fixed that parameter",
    "namespace_not_allowed": "request it from an allowed namespace, or ask the operator to add "
    "this one to the template's namespaces: list",
    "conflict": "rename the pod's container or volume that clashes",
    "render_failed": "the template cannot render for this pod (see the message); tell the "
    "template's owner",
    "no_default_templates": 'name the templates instead of "true"',
    "invalid_pod": "fix the pod spec named in the message",
    "profile_not_found": "label the namespace with an existing profile, or remove the label",
    "too_many_templates": "request fewer templates",
}


@dataclass
class Explanation:
    """The verdict for one pod (or pod template)."""

    target: str
    injected: bool
    reason: str
    message: str
    fix: str = ""
    hints: list[str] = field(default_factory=list)
    outdated: list[str] = field(default_factory=list)
    states: list[dict[str, str | None]] = field(default_factory=list)
    """Each template's fleet state (injector.fleet): current, outdated, removed, missed,
    blocked."""

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "injected": self.injected,
            "reason": self.reason,
            "message": self.message,
            "fix": self.fix,
            "hints": self.hints,
            "outdated": self.outdated,
            "states": self.states,
        }

    def lines(self) -> list[str]:
        verdict = "injected" if self.injected else "not injected"
        out = [f"{self.target}: {verdict}", f"  why: {self.message}"]
        if self.fix:
            out.append(f"  fix: {self.fix}")
        out += [
            f"  {s['state']}: {s['template'] or 'the pod'}: {s['reason']}"
            for s in self.states
            if s["state"] != "current"
        ]
        out += [f"  hint: {h}" for h in self.hints]
        return out


@dataclass(frozen=True)
class World:
    """What the decision depends on besides the pod."""

    settings: Settings
    catalog: Catalog
    namespace_labels: Mapping[str, str]
    entries: Sequence[Mapping[str, JSON]] | None = None
    """The mutating webhook entries as the cluster stores them (their selectors); None
    offline, where only the service's own settings are known."""


def explain(
    target: str,
    pod: Obj,
    namespace: str,
    world: World,
    owner: Obj | None = None,
    *,
    live: bool = False,
) -> Explanation:
    """Why `pod` (created in `namespace`) is or is not injected; `owner` is the workload a pod
    template comes from, whose own annotations may hold a misplaced opt-in. A `live` pod (one
    that exists) also gets its fleet states: missed and blocked name what its next restart
    gets."""
    problem = _manifest_problem(pod)
    if problem is not None:
        return Explanation(target, False, "invalid_pod", problem, FIXES["invalid_pod"])
    found = _decide(target, pod, namespace, world)
    annotations = pod["metadata"].get("annotations") or {}
    if live or world.settings.status_key in annotations:
        _with_states(found, pod, namespace, world)
    found.hints = hints(pod, world, owner)
    return found


def _manifest_problem(pod: Obj) -> str | None:
    """What the API server would refuse before any webhook ran (a manifest from a file is
    not validated yet), as far as explaining relies on it."""
    problem = shape_problem(pod)
    if problem is not None:
        return problem
    for field_name in ("annotations", "labels"):
        entries = pod["metadata"].get(field_name) or {}
        if not isinstance(entries, dict):
            return f"metadata.{field_name} must be a map"
        for key, value in entries.items():
            if not isinstance(key, str) or not isinstance(value, str):
                return (
                    f"metadata.{field_name}: {key!r}: {value!r} is not a string; quote it "
                    "(the API server refuses numbers and booleans there)"
                )
    return None


def _decide(target: str, pod: Obj, namespace: str, world: World) -> Explanation:
    settings = world.settings
    key = settings.inject_key
    annotations: Mapping[str, JSON] = pod.get("metadata", {}).get("annotations") or {}
    status = annotations.get(settings.status_key)
    if isinstance(status, str):
        return _injected(target, status, world)
    label = world.namespace_labels.get(key)
    profile = route(label, settings)
    if profile == DISABLED:
        return Explanation(
            target,
            False,
            "namespace_disabled",
            f"namespace {namespace} is labeled {key}={DISABLED}: nothing is injected there, "
            "even with the annotation",
            f"kubectl label namespace {namespace} {key}- (or label it with a profile)",
        )
    if world.entries is not None and not world.entries:
        return Explanation(
            target,
            False,
            "no_webhook",
            "no MutatingWebhookConfiguration of this install is registered: the apiserver "
            "sends no pod to the injector",
            "reinstall the chart (helm upgrade --install), then run sidecar-injector check",
        )
    if namespace in settings.exclude_namespaces or not _selected(pod, namespace, world):
        return Explanation(
            target,
            False,
            "excluded_namespace",
            f"namespace {namespace} or this pod is never sent to the webhook (kube-system, the "
            "release namespace, config.excludeNamespaces and the webhook's own "
            "namespaceSelector/objectSelector leave it out)",
            "run it in a namespace the webhook serves",
        )
    own = annotations.get(key)
    if not isinstance(own, str) and profile is None:
        return Explanation(
            target,
            False,
            "not_requested",
            f"the pod has no {key} annotation and namespace {namespace} no {key} label",
            f'annotate the pod (for a workload, its pod template) with {key}: "<template>", or '
            f"label the namespace: kubectl label namespace {namespace} {key}=<profile>",
        )
    if isinstance(own, str) and opted_out(own):
        return Explanation(
            target,
            False,
            "opted_out",
            f"its annotation {key}: {own!r} keeps it away from the webhook",
            "remove the annotation (in a profile namespace) or name the templates",
        )
    decision = decide(pod, namespace, world.catalog, settings, profile)
    if decision.errors:
        first = decision.errors[0]
        message = first.message
        if first.reason == "template_load_failed" and first.template is not None:
            details = "; ".join(str(e) for e in world.catalog.errors.get(first.template, ()))
            message = (
                f"template {first.template!r} fails to load from the ConfigMap: {details} "
                "(replicas that loaded an earlier good version still inject that one; a "
                "restarted replica denies it)"
            )
        return Explanation(target, False, first.reason, message, FIXES[first.reason])
    if decision.skip is not None:
        return Explanation(target, False, decision.skip, f"the webhook skips it ({decision.skip})")
    by = f" (profile {decision.profile})" if decision.profile else ""
    return Explanation(
        target, True, "injected", f"would be injected with {', '.join(decision.injected)}{by}"
    )


def _injected(target: str, status: str, world: World) -> Explanation:
    recorded = read_status(status)
    if isinstance(recorded, str):
        return Explanation(target, True, "injected", f"injected, but {recorded}")
    names = ", ".join(name for name, _ in recorded.templates)
    profile = orjson.loads(status).get("profile")
    by = f" (profile {profile})" if profile else ""
    return Explanation(target, True, "injected", f"injected with {names}{by}")


def _with_states(found: Explanation, pod: Obj, namespace: str, world: World) -> None:
    """The pod's fleet states (`injector.fleet`, as `outdated` judges them): a live pod the
    webhook would inject now but that runs without it is `missed`, not injected."""
    meta = PodMeta.of({**(pod.get("metadata") or {}), "namespace": namespace})
    label = world.namespace_labels.get(world.settings.inject_key)
    audit = Fleet(world.catalog, world.settings).audit(meta, label)
    found.states = [
        {"template": f.template, "state": f.state, "reason": f.reason} for f in audit.findings
    ]
    found.outdated = [
        f"{f.template}: {f.state}: {f.reason}; recreate the pod (kubectl rollout restart for a "
        "workload)"
        for f in audit.findings
        if f.state in ("outdated", "removed")
    ]
    injected = world.settings.status_key in meta.annotations
    if injected and audit.findings and all(f.state == "current" for f in audit.findings):
        found.message += ", all current"
    missed = [f for f in audit.findings if f.state == "missed"]
    if missed and not injected and found.injected:
        found.injected = False
        found.reason = "missed"
        found.message = "; ".join(f.reason for f in missed)
        found.fix = "recreate the pod: kubectl rollout restart for a workload, else delete it"


def _selected(pod: Obj, namespace: str, world: World) -> bool:
    pod_labels = pod.get("metadata", {}).get("labels") or {}
    return selected(world.entries, namespace, world.namespace_labels, pod_labels)


def hints(pod: Obj, world: World, owner: Obj | None = None) -> list[str]:
    """Near misses: override annotations for a template the pod does not request (the warning
    the webhook gives), annotation keys a typo away from one the injector reads, another
    injector's `/inject`, or the opt-in on the workload instead of its pod template."""
    settings = world.settings
    key = settings.inject_key
    annotations: Mapping[str, JSON] = pod.get("metadata", {}).get("annotations") or {}
    given = overrides(annotations, settings)
    stray = stray_overrides(
        given, _requested(annotations, world), settings, world.catalog.templates
    )
    found = list(stray.values())
    wanted = [key] + [
        f"{settings.param_prefix(name)}{param}"
        for name, template in world.catalog.templates.items()
        for param in template.params
    ]
    for candidate in annotations:
        if candidate in wanted or candidate in stray:
            continue
        near = nearest(candidate, wanted)
        if near is not None:
            found.append(f"annotation {candidate} looks like a typo of {near}")
        elif candidate.endswith("/inject"):
            found.append(f"annotation {candidate} is another prefix's; this injector reads {key}")
    owner_metadata = (owner or {}).get("metadata")
    own = owner_metadata.get("annotations") if isinstance(owner_metadata, dict) else None
    if isinstance(own, dict) and key in own:
        kind = (owner or {}).get("kind", "the workload")
        found.append(
            f"{key} is set on the {kind}'s own metadata; it belongs in "
            "spec.template.metadata.annotations (the pods')"
        )
    return found


def _requested(annotations: Mapping[str, JSON], world: World) -> tuple[str, ...]:
    """The templates the pod asks for: its own annotation's, else its namespace profile's."""
    settings = world.settings
    names = requested(annotations, settings)
    if names is None:
        profile = route(world.namespace_labels.get(settings.inject_key), settings)
        names = settings.routed_profiles.get(profile or "", ())
    return names if isinstance(names, tuple) else ()
