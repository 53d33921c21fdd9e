"""The template model: a validated, compiled template, what it renders for one pod, and the
status record a pod keeps of the templates it got. `injector.build` makes one from a file."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import NamedTuple

import orjson

from injector.params import ParamSpec, Value
from injector.render import Const, Context, MapNode, Node, RenderError, make_context
from injector.types import JSON, Obj

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
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")


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
        return to_rendered(self.tree.render(make_context(pod, values, self.name)))

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


def to_rendered(data: JSON) -> Rendered:
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
