"""Whether a new set of template files may replace the current one: the judgement a reload
makes, also given to the person who edits the templates ConfigMap (the /validate webhook)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import NamedTuple

from injector.loader import SUFFIX, LoadResult, Source, load_sources, object_sources
from injector.policy import ENABLED, Settings
from injector.types import JSON


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


def review(
    request: Mapping[str, JSON], settings: Settings, serving: Collection[str] = ()
) -> Verdict | None:
    """Judge the ConfigMap of an AdmissionReview `request`, for a webhook serving the
    templates `serving`; None when there is nothing to judge (not a ConfigMap, or not a CREATE
    or UPDATE of one): it is allowed untouched. A ConfigMap deleted and created again empty
    is refused like an emptied one."""
    kind = request.get("kind") or {}
    if kind.get("kind") != "ConfigMap" or kind.get("group", "") != "":
        return None
    if request.get("operation") not in ("CREATE", "UPDATE") or request.get("subResource"):
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
