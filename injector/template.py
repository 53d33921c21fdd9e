"""The template model: one validated, compiled template built from a parsed YAML file."""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import NamedTuple

import orjson

from injector.names import DNS1123_LABEL, DNS1123_SUBDOMAIN
from injector.params import ParamSpec, Value, parse_spec
from injector.render import Compiler, Const, Context, MapNode, Node, RenderError, make_context
from injector.types import JSON, Obj
from injector.yamlsrc import Path

LIST_SECTIONS = (
    "containers",
    "initContainers",
    "sidecars",
    "volumes",
    "volumeMounts",
    "env",
    "imagePullSecrets",
)
MAP_SECTIONS = ("labels", "annotations")
SECTIONS = (*LIST_SECTIONS, *MAP_SECTIONS)
"""The template keys of Rendered's fields, in order."""
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
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
_NAMESPACE_GLOB = re.compile(r"^(?:[a-z0-9*?-]|\[!?[a-z0-9-]+\])+$")
"""A shell-style glob that can match a namespace name (a DNS-1123 label)."""
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")

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

Problem = tuple[Path, str]


class Rendered(NamedTuple):
    """One template rendered for one pod: plain JSON sections ready to be patched in.
    (Tuples, like the other per-request records: a frozen dataclass costs ~4x to build.)"""

    containers: list[Obj]
    init_containers: list[Obj]
    sidecars: list[Obj]
    volumes: list[Obj]
    volume_mounts: list[Obj]
    env: list[Obj]
    image_pull_secrets: list[Obj]
    labels: dict[str, str]
    annotations: dict[str, str]


@dataclass(frozen=True)
class Template:
    """A template ready to render: parameters parsed, expressions compiled, defaults bound."""

    name: str
    digest: str
    description: str
    params: Mapping[str, ParamSpec]
    target_containers: tuple[str, ...]
    container_names: tuple[str, ...]
    init_container_names: tuple[str, ...]
    volume_names: tuple[str, ...]
    tree: Node
    defaults_bound: Node | None = field(default=None, compare=False)
    sidecar_names: tuple[str, ...] = ()
    """Containers that run for the pod's whole life; where they go is the service's choice."""
    namespaces: tuple[str, ...] = ()
    """Globs of the namespaces that may request this template; empty: every namespace."""
    namespace_pattern: re.Pattern[str] | None = field(default=None, compare=False)
    """The allow-list as one regular expression (fnmatchcase semantics); None: everywhere."""
    hidden: bool = False
    """Left out of the lists users see (the available templates in a denial), e.g. the
    chart's own helm-test template; requesting it by name still works."""
    source: str = field(default="", compare=False, repr=False)
    """The file's text as it loaded: what the audit keeps in the last-good ConfigMap."""

    def render(self, pod: Mapping[str, JSON], overrides: Mapping[str, Value]) -> Rendered:
        """Render for one pod; raises RenderError naming the field that failed."""
        if not overrides and self.defaults_bound is not None:
            plan = self._default_plan
            sections = plan.sections.copy()
            if plan.dynamic:
                params, template = self._default_names
                ctx = Context(pod, params, template)
                for index, node in plan.dynamic:
                    sections[index] = node.render(ctx)
            rendered = Rendered(*sections)
            if not plan.checked:
                _check_rendered(rendered)
            return rendered
        values = {n: s.default for n, s in self.params.items() if s.default is not None}
        values.update(overrides)
        return _to_rendered(self.tree.render(make_context(pod, values, self.name)))

    @functools.cached_property
    def _default_names(self) -> tuple[SimpleNamespace, SimpleNamespace]:
        """`params` (the defaults) and `template` for expressions left to render per pod;
        built once, shared read-only (the sandbox cannot assign attributes)."""
        defaults = {n: s.default for n, s in self.params.items() if s.default is not None}
        ctx = make_context({}, defaults, self.name)
        return ctx.params, ctx.template

    @functools.cached_property
    def _default_plan(self) -> _Plan:
        """Rendering with the defaults, straight into the sections of Rendered: the constant
        ones once, here; the pod-dependent ones per pod."""
        tree = self.defaults_bound
        if isinstance(tree, MapNode):
            constant = {k: n.value for k, n in tree.items if isinstance(n, Const)}
            dynamic = {k: n for k, n in tree.items if not isinstance(n, Const)}
        else:
            constant, dynamic = (tree.value if isinstance(tree, Const) else {}), {}
        rendered = _sections(constant)
        return _Plan(
            list(rendered),
            tuple((SECTIONS.index(key), node) for key, node in dynamic.items()),
            # The sections `_check_rendered` looks at do not depend on the pod: the load-time
            # test render, which used the same defaults, already checked exactly these values.
            not any(key in _CHECKED for key in dynamic),
        )

    @functools.cached_property
    def status_records(self) -> tuple[str, str]:
        """The status annotation of a pod that got only this template, indexed by whether
        sidecars are native (the lists say where they went)."""
        return status_of([self], native=False), status_of([self], native=True)

    @functools.cached_property
    def all_container_names(self) -> tuple[str, ...]:
        """Every container name it adds, wherever they go: they share one namespace."""
        return (*self.init_container_names, *self.container_names, *self.sidecar_names)

    def placed(self, native: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The names this template adds to containers and to init containers."""
        if native:
            return self.container_names, (*self.init_container_names, *self.sidecar_names)
        return (*self.container_names, *self.sidecar_names), self.init_container_names

    @functools.cached_property
    def required(self) -> tuple[str, ...]:
        """Parameters without a default: the pod must set them."""
        return tuple(name for name, spec in self.params.items() if spec.default is None)


_CHECKED = ("env", "labels")
"""The sections `_check_rendered` looks at."""


class _Plan(NamedTuple):
    sections: list[JSON]
    dynamic: tuple[tuple[int, Node], ...]
    checked: bool


def _to_rendered(data: JSON) -> Rendered:
    rendered = _sections(data)
    _check_rendered(rendered)
    return rendered


def _sections(data: JSON) -> Rendered:
    return Rendered(
        data.get("containers", []),
        data.get("initContainers", []),
        data.get("sidecars", []),
        data.get("volumes", []),
        data.get("volumeMounts", []),
        data.get("env", []),
        data.get("imagePullSecrets", []),
        data.get("labels", {}),
        data.get("annotations", {}),
    )


def _check_rendered(rendered: Rendered) -> None:
    """Reject output the API server would refuse with a less helpful message."""
    for index, var in enumerate(rendered.env):
        if not isinstance(var.get("name"), str) or not var["name"]:
            raise RenderError(("env", index, "name"), "env name renders empty")
    for key, value in rendered.labels.items():
        if not _LABEL_VALUE.match(value):
            raise RenderError(
                ("labels", key),
                f"label value {value!r} is not valid: at most 63 characters of letters, "
                "digits, '-', '_' and '.', starting and ending with a letter or digit",
            )


def status_of(templates: Sequence[Template], profile: str | None = None, *, native: bool) -> str:
    """The status annotation's JSON: which template versions added which names where (with
    `native`, sidecars are init containers), and the namespace profile that asked for them
    (absent when the pod's annotation did)."""
    placed = [t.placed(native) for t in templates]
    record: dict[str, JSON] = {
        "templates": [{"name": t.name, "digest": t.digest} for t in templates],
        "containers": [n for containers, _ in placed for n in containers],
        "initContainers": [n for _, init in placed for n in init],
        "volumes": [n for t in templates for n in t.volume_names],
    }
    if profile is not None:
        record["profile"] = profile
    return orjson.dumps(record).decode()


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
    names = _check_shape(body, raw.get("targetContainers", []), problems)
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
            _to_rendered(template.tree.render(make_context(pod, values, template.name)))
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


def _check_shape(body: Obj, targets: JSON, problems: list[Problem]) -> dict[str, tuple[str, ...]]:
    """Structural checks on the sections; returns the literal container and volume names."""
    for key in LIST_SECTIONS:
        if key in body and not isinstance(body[key], list):
            problems.append(((key,), "must be a list"))
            body[key] = []
    for key in MAP_SECTIONS:
        if key in body and not isinstance(body[key], dict):
            problems.append(((key,), "must be a map of string keys to string values"))
            body[key] = {}
    names: dict[str, tuple[str, ...]] = {}
    seen: dict[str, str] = {}
    for key in ("containers", "initContainers", "sidecars", "volumes"):
        names[key] = tuple(_named_entries(key, body.get(key, []), seen, problems))
    _check_placements(body, problems)
    _check_entries(body, "volumeMounts", ("name", "mountPath"), "mountPath", problems)
    _check_entries(body, "env", ("name",), "name", problems)
    _check_entries(body, "imagePullSecrets", ("name",), "name", problems)
    for key in MAP_SECTIONS:
        _check_string_map(key, body.get(key, {}), problems)
    _check_targets(targets, problems)
    return names


PLACEMENT_FIELDS: dict[str, dict[str, str]] = {
    "containers": {
        "restartPolicy": "only init containers take a restartPolicy: for a sidecar that runs "
        "for the pod's whole life, use sidecars: (the service places it) or initContainers: "
        "with restartPolicy: Always",
    },
    "sidecars": {
        "restartPolicy": "the placement owns it: --native-sidecars makes each sidecar an init "
        "container with restartPolicy: Always, or a regular container",
        "resizePolicy": "Kubernetes refuses it on init containers, where a native sidecar "
        "goes; a sidecar must fit both placements (move it to containers:)",
    },
    "initContainers": {
        "resizePolicy": "Kubernetes refuses it on init containers",
    },
}
"""Container fields that one place in a pod spec refuses: the error says why."""
RESTARTABLE_ONLY = ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe")
"""Fields an init container takes only with restartPolicy: Always."""


def _check_placements(body: Obj, problems: list[Problem]) -> None:
    """What the API server would refuse about where each container goes, said at load time
    (and for `sidecars`, in both placements)."""
    for key, refused in PLACEMENT_FIELDS.items():
        for index, entry in enumerate(body.get(key, [])):
            if not isinstance(entry, dict):
                continue
            problems += [
                ((key, index, name), f"may not be set: {why}")
                for name, why in refused.items()
                if name in entry
            ]
            if key != "initContainers":
                continue
            policy = entry.get("restartPolicy")
            if policy not in (None, "Always"):
                problems.append(
                    (
                        (key, index, "restartPolicy"),
                        "may only be Always (a native sidecar) or left out",
                    )
                )
            elif policy is None:
                problems += [
                    ((key, index, name), "may only be set on an init container with "
                     "restartPolicy: Always (a native sidecar)")
                    for name in RESTARTABLE_ONLY
                    if name in entry
                ]  # fmt: skip


def _named_entries(
    key: str, entries: list[JSON], seen: dict[str, str], problems: list[Problem]
) -> list[str]:
    kind = "volume" if key == "volumes" else "container"
    names: list[str] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(((key, index), f"each {kind} must be a map with a name"))
            continue
        name = entry.get("name")
        if not isinstance(name, str) or "{" in name or not DNS1123_LABEL.match(name):
            problems.append(
                (
                    (key, index, "name"),
                    f"{kind} name {name!r} must be a literal "
                    "DNS-1123 label (lower-case letters, digits, '-'; no expressions)",
                )
            )
            continue
        if kind == "container" and not entry.get("image"):
            problems.append(((key, index, "image"), "a container needs an image"))
        where = f"{kind}:{name}"
        if where in seen:
            problems.append(
                ((key, index, "name"), f"duplicate {kind} name {name!r} (also at {seen[where]})")
            )
        seen[where] = f"{key}[{index}]"
        names.append(name)
    return names


def _check_entries(
    body: Obj, key: str, required: tuple[str, ...], unique: str, problems: list[Problem]
) -> None:
    first: dict[str, int] = {}
    for index, entry in enumerate(body.get(key, [])):
        if not isinstance(entry, dict):
            problems.append(((key, index), f"must be a map with {', '.join(required)}"))
            continue
        for field_name in required:
            if not isinstance(entry.get(field_name), str) or not entry[field_name]:
                problems.append(((key, index, field_name), "is required (a non-empty string)"))
        value = entry.get(unique)
        if isinstance(value, str) and value in first:
            problems.append(
                (
                    (key, index, unique),
                    f"duplicate {unique} {value!r} (also at {key}[{first[value]}])",
                )
            )
        elif isinstance(value, str):
            first[value] = index


def _check_string_map(key: str, values: Obj, problems: list[Problem]) -> None:
    for name, value in values.items():
        if not _valid_key(str(name)):
            problems.append(
                (
                    (key, str(name)),
                    f"{name!r} is not a valid {key[:-1]} key "
                    "(optional DNS prefix/ then a name of at most 63 characters)",
                )
            )
        if not isinstance(value, str):
            problems.append(((key, str(name)), f"value {value!r} must be a string; quote it"))


def _check_targets(targets: JSON, problems: list[Problem]) -> None:
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        problems.append((("targetContainers",), "must be a list of container names"))


def _valid_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return bool(_QUALIFIED_NAME.match(name))
