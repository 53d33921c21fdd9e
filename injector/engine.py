"""One injection decision: policy, parameters, rendering, conflicts and the patch, for one pod."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from injector.catalog import Catalog
from injector.conflicts import Taken
from injector.errors import InjectionError, SkipReason
from injector.params import ParamSpec, Value
from injector.patch import Injection, build
from injector.policy import Override, Settings, request_skip, select
from injector.render import RenderError
from injector.template import Template, status_of
from injector.types import JSON, AddOp, Obj
from injector.yamlsrc import format_path


class Decision(NamedTuple):
    """What to answer for one pod. With errors, `patch` holds only the templates that worked:
    the caller denies the pod or, with --on-error=allow, admits it with that patch."""

    skip: SkipReason | None = None
    requested: tuple[str, ...] = ()
    injected: tuple[str, ...] = ()
    patch: tuple[AddOp, ...] = ()
    warnings: tuple[str, ...] = ()
    errors: tuple[InjectionError, ...] = ()
    profile: str | None = None
    """The namespace profile that decided; None when the pod's own annotation did."""


def review(
    request: Mapping[str, JSON], catalog: Catalog, settings: Settings, profile: str | None = None
) -> Decision:
    """Decide for an AdmissionReview `request`, sent with the namespace's `profile` (None: the
    pod-annotation path)."""
    skip = request_skip(request)
    if skip is not None:
        return Decision(skip=skip)
    pod = request.get("object")
    namespace = request.get("namespace")
    if not namespace and isinstance(pod, dict) and isinstance(pod.get("metadata"), dict):
        namespace = pod["metadata"].get("namespace")
    return decide(pod, str(namespace or ""), catalog, settings, profile)


def decide(
    pod: JSON, namespace: str, catalog: Catalog, settings: Settings, profile: str | None = None
) -> Decision:
    """Decide for one pod object (the admission request's or one from a manifest). The pod's
    own `inject` annotation decides alone; without it, the namespace's `profile` does."""
    problem = shape_problem(pod)
    if problem is not None:
        return Decision(errors=(InjectionError("invalid_pod", problem),))
    annotations: Obj = pod["metadata"].get("annotations") or {}
    selected = select(annotations, namespace, settings, profile, catalog.templates)
    if isinstance(selected, str):
        return Decision(skip=selected)
    names, profile, given, stray, error = selected
    if error is not None:
        return Decision(errors=(error,), profile=profile)
    injections, errors = _prepare(pod, namespace, names, catalog, settings, given=given)
    if not injections:
        return Decision(requested=names, warnings=stray, errors=tuple(errors), profile=profile)
    native = settings.native_sidecars
    status = _status(injections, profile, native)
    ops, warnings = build(pod, injections, settings.status_key, status, native)
    injected = tuple([i.template.name for i in injections])
    # Positional: keyword arguments make building the tuple measurably dearer on every request.
    return Decision(None, names, injected, tuple(ops), (*stray, *warnings), tuple(errors), profile)


def _prepare(
    pod: Obj,
    namespace: str,
    names: tuple[str, ...],
    catalog: Catalog,
    settings: Settings,
    *,
    given: Mapping[str, list[Override]],
) -> tuple[list[Injection], list[InjectionError]]:
    """Look up, check and render each requested template; failures are kept apart."""
    view = pod_view(pod, namespace)
    taken = Taken.from_spec(pod["spec"])
    injections: list[Injection] = []
    errors: list[InjectionError] = []
    for name in names:
        found = catalog.lookup(name)
        if isinstance(found, InjectionError):
            errors.append(found)
            continue
        allowed = found.namespace_pattern
        if allowed is not None and not allowed.match(namespace):
            errors.append(_namespace_error(found, namespace))
            continue
        values = parse_overrides(found, given.get(name, ()), settings)
        if isinstance(values, list):
            errors += values
            continue
        clashes = taken.check(found)
        if clashes:
            errors += clashes
            continue
        try:
            rendered = found.render(view, values)
        except RenderError as exc:
            errors.append(_render_error(found, exc))
            continue
        taken.claim(found)
        injections.append(Injection(found, rendered))
    return injections, errors


def pod_view(pod: Obj, namespace: str) -> dict[str, JSON]:
    """What templates see as `pod`."""
    metadata: Obj = pod["metadata"]
    spec: Obj = pod["spec"]
    generate_name = metadata.get("generateName") or ""
    return {
        "name": metadata.get("name") or generate_name,
        "generateName": generate_name,
        "namespace": namespace,
        "labels": metadata.get("labels") or {},
        "annotations": metadata.get("annotations") or {},
        "serviceAccountName": spec.get("serviceAccountName")
        or spec.get("serviceAccount")
        or "default",
    }


def parse_overrides(
    template: Template, given: Iterable[Override], settings: Settings
) -> dict[str, Value] | list[InjectionError]:
    """Parameter values from the template's override annotations, validated."""
    values: dict[str, Value] = {}
    errors: list[InjectionError] = []
    locked = 0  # locked-parameter errors come first: they are the operator's decision
    for key, param, raw in given:
        spec = template.params.get(param)
        if spec is not None and not spec.overridable:
            errors.insert(locked, _locked_error(template, spec, key))
            locked += 1
            continue
        if spec is None:
            known = ", ".join(template.params) or "none"
            errors.append(
                _param_error(
                    template,
                    f"annotation {key}: template {template.name!r} "
                    f"has no such parameter (parameters: {known})",
                )
            )
            continue
        try:
            values[spec.name] = spec.parse(str(raw))
        except ValueError:
            errors.append(
                _param_error(
                    template, f"annotation {key}: {raw!r} is not valid: expected {spec.expected()}"
                )
            )
    for name in template.required:
        if name not in values:
            prefix = settings.param_prefix(template.name)
            errors.append(
                _param_error(
                    template,
                    f"template {template.name!r} requires "
                    f"parameter {name}: set annotation {prefix}{name} "
                    f"to {template.params[name].expected()}",
                )
            )
    return errors or values


def _locked_error(template: Template, spec: ParamSpec, key: str) -> InjectionError:
    return InjectionError(
        "parameter_locked",
        f"annotation {key}: parameter {spec.name} of template {template.name!r} is locked by "
        "the operator (overridable: false); remove the annotation",
        template.name,
    )


def _namespace_error(template: Template, namespace: str) -> InjectionError:
    return InjectionError(
        "namespace_not_allowed",
        f"template {template.name!r} is not allowed in namespace {namespace!r} "
        f"(allowed: {', '.join(template.namespaces)})",
        template.name,
    )


def _param_error(template: Template, message: str) -> InjectionError:
    return InjectionError("invalid_parameter", message, template.name)


def _render_error(template: Template, exc: RenderError) -> InjectionError:
    return InjectionError(
        "render_failed",
        f"template {template.name!r} failed to render {format_path(exc.path)} for this pod: "
        f"{exc.message}",
        template.name,
    )


def _status(injections: Sequence[Injection], profile: str | None, native: bool) -> str:
    """The idempotency record: which template versions added what where, and the deciding
    profile."""
    if len(injections) == 1 and profile is None:
        return injections[0].template.status_records[native]  # the usual case, serialized once
    return status_of([i.template for i in injections], profile, native=native)


def shape_problem(pod: JSON) -> str | None:
    """The few structural facts the engine relies on; the API server validates the rest."""
    if not isinstance(pod, dict):
        return "the request has no pod object"
    metadata = pod.get("metadata")
    if not isinstance(metadata, dict):
        return "the pod has no metadata"
    annotations = metadata.get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        return "metadata.annotations must be a map"
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return "the pod has no spec"
    for key in ("containers", "initContainers", "volumes"):
        entries = spec.get(key)
        if entries is not None and not _list_of_objects(entries):
            return f"spec.{key} must be a list of objects"
    if not spec.get("containers"):
        return "spec.containers must list at least one container"
    for index, container in enumerate(spec["containers"]):
        env = container.get("env")
        if env is not None and not isinstance(env, list):
            return f"spec.containers[{index}].env must be a list"
        mounts = container.get("volumeMounts")
        if mounts is not None and not isinstance(mounts, list):
            return f"spec.containers[{index}].volumeMounts must be a list"
    return None


def _list_of_objects(entries: JSON) -> bool:
    if not isinstance(entries, list):
        return False
    for entry in entries:  # noqa: SIM110 - all() over a generator costs more, every review
        if not isinstance(entry, dict):
            return False
    return True
