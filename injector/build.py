"""A template's parsed YAML checked and compiled into a Template: its top-level keys,
parameters and namespaces, the sections' shape (`injector.shape`), every expression compiled,
a test render against canonical pods, and the digest pods record of what it injects."""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import re
from collections.abc import Mapping

import orjson

from injector.names import DNS1123_LABEL
from injector.params import ParamSpec, parse_spec
from injector.render import Compiler, Problem, RenderError, make_context
from injector.shape import check_shape
from injector.template import MAP_SECTIONS, SECTIONS, Template, to_rendered
from injector.types import JSON
from injector.yamlsrc import Path

TOP_KEYS = frozenset(
    {
        "description",
        "parameters",
        "targetContainers",
        "namespaces",
        "hidden",
        *SECTIONS,
    }
)
_NAMESPACE_GLOB = re.compile(r"^(?:[a-z0-9*?-]|\[!?[a-z0-9-]+\])+$")
"""A shell-style glob that can match a namespace name (a DNS-1123 label)."""
CANONICAL_POD: Mapping[str, JSON] = {
    "name": "canonical-pod",
    "generateName": "canonical-",
    "namespace": "default",
    "labels": {"app": "canonical", "app.kubernetes.io/name": "canonical"},
    "annotations": {},
    "serviceAccountName": "default",
}
"""What the load-time test render sees as `pod`: expressions must work on it..."""
CANONICAL_CONTROLLER_POD: Mapping[str, JSON] = {**CANONICAL_POD, "name": "canonical-"}
"""...and on a pod a controller creates, which has only a generateName (`pod.name` is then
"canonical-", which is not a valid label value, for example)."""
INT64 = (-(2**63), 2**63 - 1)


NOT_INJECTED = frozenset({"description", "namespaces", "hidden"})
"""Template keys that change who may get it or how it is shown, not what a pod gets."""
PARAMETER_OUTPUT = ("type", "default")
"""What of a parameter spec can change a rendering; the rest only validates overrides."""


def injected_content(raw: Mapping[str, JSON]) -> dict[str, JSON]:
    """The part of a template that decides what pods get: its digest changes only when that
    does, so `outdated` never asks for restarts after an edit of a description or of who may
    request it."""
    content = {key: value for key, value in raw.items() if key not in NOT_INJECTED}
    parameters = raw.get("parameters")
    if isinstance(parameters, dict):
        content["parameters"] = {
            name: {k: spec.get(k) for k in PARAMETER_OUTPUT if k in spec}
            if isinstance(spec, dict)
            else spec
            for name, spec in parameters.items()
        }
    return content


def digest_of(data: JSON) -> str:
    """A short content digest that ignores formatting and key order."""
    canonical = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:16]


TYPED_FIELDS = frozenset(
    {
        # int or int-or-string
        "containerPort", "hostPort", "port", "number", "runAsUser", "runAsGroup", "fsGroup",
        "defaultMode", "mode", "weight", "priority",
        # bool
        "readOnly", "privileged", "runAsNonRoot", "readOnlyRootFilesystem",
        "allowPrivilegeEscalation", "stdin", "stdinOnce", "tty", "optional",
    }
)  # fmt: skip
"""Container and volume fields that take ints or booleans, plus every `...Seconds` and
`...Threshold` field. Only there does `"{{ params.port }}"` keep its int or bool type."""


def string_only(path: Path) -> bool:
    """Whether a single-expression string stays a string: everywhere except typed fields
    (labels, annotations, env values, args, headers, attributes... are strings only)."""
    if not path or path[0] in MAP_SECTIONS:
        return True
    key = path[-1]
    if not isinstance(key, str) or (len(path) >= 3 and path[-3] == "env"):
        return True
    return not (key in TYPED_FIELDS or key.endswith(("Seconds", "Threshold")))


def build(name: str, raw: JSON, source: str = "") -> tuple[Template | None, list[Problem]]:
    """Validate and compile one template's parsed YAML (`source`: the text it was parsed
    from, kept on the template); problems carry field paths."""
    if not DNS1123_LABEL.match(name):
        return None, [
            (
                (),
                f"template name {name!r} (the file name without .yaml) must be a "
                "DNS-1123 label: lower-case letters, digits and '-', at most 63",
            )
        ]
    if not isinstance(raw, dict):
        return None, [((), "a template must be a YAML map with keys such as containers, volumes")]
    problems: list[Problem] = [
        ((str(key),), f"unknown key; allowed: {', '.join(sorted(TOP_KEYS))}")
        for key in raw
        if key not in TOP_KEYS
    ]
    if not isinstance(raw.get("description", ""), str):
        problems.append((("description",), "must be a string"))
    if not isinstance(raw.get("hidden", False), bool):
        problems.append((("hidden",), "must be true or false (unquoted)"))
    before = len(problems)
    _check_values(raw, (), problems)
    if len(problems) > before:  # the checks below assume string keys and int64 numbers
        return None, problems
    params = _parse_params(raw.get("parameters", {}), problems)
    namespaces = _parse_namespaces(raw.get("namespaces", []), problems)
    body = {key: raw[key] for key in SECTIONS if key in raw}
    names = check_shape(body, raw.get("targetContainers", []), problems)
    raw_params = raw.get("parameters")
    declared = (
        frozenset(str(n) for n in raw_params) if isinstance(raw_params, dict) else frozenset()
    )
    tree = Compiler(params, string_only, problems, declared).compile(body, ())
    if problems:
        return None, problems
    template = Template(
        name=name,
        digest=digest_of(injected_content(raw)),
        description=raw.get("description", ""),
        params=params,
        target_containers=tuple(raw.get("targetContainers", [])),
        container_names=names["containers"],
        init_container_names=names["initContainers"],
        volume_names=names["volumes"],
        tree=tree,
        sidecar_names=names["sidecars"],
        namespaces=namespaces,
        namespace_pattern=_glob_pattern(namespaces),
        hidden=raw.get("hidden", False) is True,
        source=source,
    )
    return _bind_defaults(template, problems), problems


def _parse_params(raw: JSON, problems: list[Problem]) -> dict[str, ParamSpec]:
    if not isinstance(raw, dict):
        problems.append((("parameters",), "must be a map of name → {type, default, ...}"))
        return {}
    specs: dict[str, ParamSpec] = {}
    for name, spec_raw in raw.items():
        spec, spec_problems = parse_spec(str(name), spec_raw)
        problems += [(("parameters", str(name), *sub), msg) for sub, msg in spec_problems]
        if spec is not None:
            specs[spec.name] = spec
    return specs


def _parse_namespaces(raw: JSON, problems: list[Problem]) -> tuple[str, ...]:
    if not isinstance(raw, list):
        problems.append((("namespaces",), "must be a list of namespace names or globs"))
        return ()
    for index, glob in enumerate(raw):
        if not isinstance(glob, str) or not _NAMESPACE_GLOB.match(glob):
            problems.append(
                (
                    ("namespaces", index),
                    f"{glob!r} is not a namespace glob: use lower-case letters, digits and '-' "
                    "with the wildcards *, ? and [...] (e.g. payments-*)",
                )
            )
    return tuple(str(glob) for glob in raw)


def _glob_pattern(globs: tuple[str, ...]) -> re.Pattern[str] | None:
    """One case-sensitive regular expression for the allow-list (fnmatchcase semantics)."""
    if not globs:
        return None
    return re.compile("|".join(fnmatch.translate(glob) for glob in globs))


def _bind_defaults(template: Template, problems: list[Problem]) -> Template | None:
    """Test-render against the canonical pod, and pre-render what only needs defaults."""
    values = {
        n: s.default if s.default is not None else s.placeholder()
        for n, s in template.params.items()
    }
    for pod, which in (
        (CANONICAL_POD, "canonical pod"),
        (
            CANONICAL_CONTROLLER_POD,
            "canonical pod with only a generateName (as Deployments and Jobs create)",
        ),
    ):
        try:
            to_rendered(template.tree.render(make_context(pod, values, template.name)))
        except RenderError as exc:
            problems.append((exc.path, f"test render against the {which} failed: {exc}"))
            return None
    ctx = make_context(CANONICAL_POD, values, template.name)
    bound = template.tree.bind(ctx) if not template.required else None
    return dataclasses.replace(template, defaults_bound=bound)


def _check_values(raw: JSON, path: Path, problems: list[Problem]) -> None:
    """Keys must be strings and integers must fit in 64 bits, anywhere in the file."""
    if isinstance(raw, dict):
        for key, value in raw.items():
            if not isinstance(key, str):
                problems.append((path, f"key {key!r} must be a string; quote it"))
            _check_values(value, (*path, str(key)), problems)
    elif isinstance(raw, list):
        for index, item in enumerate(raw):
            _check_values(item, (*path, index), problems)
    elif isinstance(raw, int) and not INT64[0] <= raw <= INT64[1]:
        problems.append((path, f"{raw} does not fit in a 64-bit integer"))
