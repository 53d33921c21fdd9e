"""What the /validate webhook judges: whether a new set of template files may replace the
current one (the judgement a reload makes, given to the person who edits the templates
ConfigMap), and whether a namespace's `<prefix>/inject` label names something that exists."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Literal, NamedTuple, get_args

from injector.loader import SUFFIX, LoadResult, Source, load_sources, object_sources
from injector.near import nearest
from injector.policy import DISABLED, ENABLED, Settings
from injector.types import JSON

Kind = Literal["configmap", "namespace"]
"""What /validate judges: edits of the templates ConfigMap, namespace inject labels."""
KINDS: tuple[Kind, ...] = get_args(Kind)
_KINDS: dict[str, Kind] = {"ConfigMap": "configmap", "Namespace": "namespace"}


class Verdict(NamedTuple):
    """Problems that refuse the edit, and findings worth a warning."""

    errors: tuple[str, ...]
    warnings: tuple[str, ...]


def emptied(before: Collection[str], result: LoadResult) -> str | None:
    """Every template gone at once is far likelier a ConfigMap emptied by accident (or a sync
    gone wrong) than a wish to deny every opted-in pod: refused, the current set keeps
    serving. None when the new set may replace `before`."""
    if before and not result.templates and not result.errors:
        return (
            f"the edit removes every template ({', '.join(sorted(before))}); at least one must stay"
        )
    return None


def judge(
    sources: Iterable[Source],
    before: Collection[str],
    settings: Settings,
    serving: Collection[str] = (),
) -> Verdict:
    """Load and test-render `sources` exactly as a reload does; `before` are the template
    names they replace, `serving` those the webhook serves now. Every load error, and a set
    that would leave none of them, refuse the edit (a reload would refuse it); templates that a
    profile or the default set name but the new set lacks are warnings."""
    result = load_sources(sources)
    errors = load_errors(result)
    empty = emptied({*before, *serving}, result)
    if empty is not None:
        errors.append(empty)
    return Verdict(tuple(errors), tuple(_unserved(result, before, settings)))


def load_errors(result: LoadResult) -> list[str]:
    """Every load error of every template, as the reload would log them."""
    return [str(error) for errors in result.errors.values() for error in errors]


def namer(profile: str) -> str:
    """Who names a profile's templates, in a message: the default set or the profile."""
    return "the default templates" if profile == ENABLED else f"profile {profile!r}"


def _unserved(result: LoadResult, before: Collection[str], settings: Settings) -> list[str]:
    warnings = []
    for profile, names in sorted(settings.routed_profiles.items()):
        who = namer(profile)
        for name in names:
            if name in result.templates or name in result.errors:
                continue
            what = "removes" if name in before else "has no"
            warnings.append(
                f"the edit {what} template {name!r}, which {who} names: pods that rely on "
                f"it will be denied until it is back"
            )
    return warnings


def subject(request: Mapping[str, JSON]) -> Kind | None:
    """Which judgement an AdmissionReview `request` is for, by the kind of its object (a core
    ConfigMap or Namespace); None for anything else, which is allowed untouched."""
    kind = request.get("kind")
    if not isinstance(kind, Mapping) or kind.get("group", "") != "":
        return None
    name = kind.get("kind")
    return _KINDS.get(name) if isinstance(name, str) else None


def _edited(request: Mapping[str, JSON]) -> bool:
    """A CREATE or UPDATE of the object itself (not of a subresource such as status)."""
    return request.get("operation") in ("CREATE", "UPDATE") and not request.get("subResource")


def review(
    request: Mapping[str, JSON], settings: Settings, serving: Collection[str] = ()
) -> Verdict | None:
    """Judge the ConfigMap of an AdmissionReview `request`, for a webhook serving the
    templates `serving`; None when there is nothing to judge (not a ConfigMap, or not a CREATE
    or UPDATE of one): it is allowed untouched. A ConfigMap deleted and created again empty
    is refused like an emptied one."""
    if subject(request) != "configmap" or not _edited(request):
        return None
    new = request.get("object")
    if not isinstance(new, Mapping):
        return Verdict(("the request has no ConfigMap object",), ())
    old = request.get("oldObject")
    before = _template_names(old) if isinstance(old, Mapping) else []
    sources = object_sources(new.get("data"), new.get("binaryData"))
    return judge(sources, before, settings, serving)


def _template_names(configmap: Mapping[str, JSON]) -> list[str]:
    """The templates a ConfigMap holds: its `<name>.yaml` keys."""
    keys = [s.key for s in object_sources(configmap.get("data"), configmap.get("binaryData"))]
    return [key.removesuffix(SUFFIX) for key in keys if key.endswith(SUFFIX)]


def label_values(settings: Settings) -> list[str]:
    """Every value the namespace inject label may take, sorted: the routed profiles (`enabled`
    only when default templates are configured) and `disabled`."""
    return sorted({*settings.routed_profiles, DISABLED})


def review_namespace(request: Mapping[str, JSON], settings: Settings) -> Verdict | None:
    """Judge the `<prefix>/inject` label of a Namespace CREATE or UPDATE: a value that names no
    profile is refused, naming the valid values and the nearest one, so that a typo is caught
    when it is typed rather than by the first denied pod. None when there is nothing to judge
    (not a Namespace CREATE or UPDATE; no such label; the label as it was): allowed."""
    if subject(request) != "namespace" or not _edited(request):
        return None
    new = request.get("object")
    if not isinstance(new, Mapping):
        return Verdict(("the request has no Namespace object",), ())
    name = _namespace_name(request, new)
    labels = _labels(new)
    if labels is None:
        return Verdict((f"namespace {name}: metadata.labels must be a map of strings",), ())
    key = settings.inject_key
    if key not in labels:
        return None
    value = labels[key]
    if not isinstance(value, str):
        return Verdict((f"namespace {name}: label {key} must be a string",), ())
    old = request.get("oldObject")
    before = _labels(old) if isinstance(old, Mapping) else None
    if before is not None and before.get(key) == value:
        return None  # unchanged: whatever it is, this edit did not make it so
    error = label_error(name, value, settings)
    return Verdict((error,), ()) if error else None


def label_error(namespace: str, value: str, settings: Settings) -> str | None:
    """Why `value` cannot be the inject label of `namespace` (quoted, as in messages), with
    what to type instead; None if it can."""
    valid = label_values(settings)
    if value in valid:
        return None
    key = settings.inject_key
    shown = _quoted(value)
    if value == ENABLED:
        why = "asks for the default templates, but none are configured (--default-templates)"
    else:
        why = "names no profile"
    message = f"namespace {namespace}: label {key}={shown} {why}; valid values: {', '.join(valid)}"
    near = nearest(value, valid)
    if near is not None:
        message += f' (did you mean "{near}"?)'
    return message


SHOWN = 100
"""Characters of a label value or namespace name a message shows (the apiserver allows 63 and
253; a request sent by hand may carry anything)."""


def shown(text: str) -> str:
    """`text` as a message or log line shows it: at most SHOWN characters."""
    return text if len(text) <= SHOWN else text[:SHOWN] + "..."


def _quoted(text: str) -> str:
    cut = shown(text)
    return cut if cut and all(c.isalnum() or c in "-_." for c in cut) else f'"{cut}"'


def _namespace_name(request: Mapping[str, JSON], namespace: Mapping[str, JSON]) -> str:
    """The namespace's name, quoted: from its metadata, else the request's."""
    metadata = namespace.get("metadata")
    name: JSON = None
    if isinstance(metadata, Mapping):
        name = metadata.get("name") or metadata.get("generateName")
    if not isinstance(name, str) or not name:
        name = request.get("name")
    if not isinstance(name, str) or not name:
        return "(unnamed)"
    return f'"{shown(name)}"'


def _labels(obj: Mapping[str, JSON]) -> Mapping[str, JSON] | None:
    """An object's metadata.labels ({} when there are none); None when they are not a map."""
    metadata = obj.get("metadata")
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        return None
    labels = metadata.get("labels")
    if labels is None:
        return {}
    return labels if isinstance(labels, Mapping) else None
