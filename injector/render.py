"""Rendering of template string leaves in the sandbox (`injector.sandbox`): compiled once into
nodes, constant parts pre-rendered, the rest rendered per pod."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import NamedTuple

import jinja2
from jinja2 import meta, nodes

from injector.params import ParamSpec, Value
from injector.sandbox import ENVIRONMENT, MAX_RENDERED
from injector.types import JSON
from injector.yamlsrc import Path

CONTEXT_NAMES = frozenset({"pod", "params", "template"})
_SINGLE_PARAM = re.compile(r"^\{\{-?\s*params\.([A-Za-z][A-Za-z0-9_]*)\s*-?\}\}$")


class RenderError(Exception):
    """A leaf failed to render; `path` says which one."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class Context(NamedTuple):
    """What an expression can see: `pod`, `params` and `template`. (A tuple: one is built per
    render, and a frozen dataclass costs several times as much to build.)"""

    pod: Mapping[str, JSON]
    params: SimpleNamespace
    template: SimpleNamespace

    def as_dict(self) -> dict[str, object]:
        return {"pod": self.pod, "params": self.params, "template": self.template}


def make_context(pod: Mapping[str, JSON], params: Mapping[str, Value], name: str) -> Context:
    return Context(pod, SimpleNamespace(**params), SimpleNamespace(name=name))


class Node:
    """A compiled piece of a template: rendering yields fresh JSON where anything is dynamic."""

    uses_pod = False

    def render(self, ctx: Context) -> JSON:
        raise NotImplementedError

    def bind(self, ctx: Context) -> Node:
        """Pre-render everything that does not depend on the pod (params fixed by `ctx`)."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Const(Node):
    """A value with no expression in it: rendered once, shared, never mutated."""

    value: JSON

    def render(self, ctx: Context) -> JSON:
        return self.value

    def bind(self, ctx: Context) -> Node:
        return self


Piece = str | tuple[str, tuple[str, ...]]
"""Literal text, or a lookup such as ("pod", ("labels", "app")) for `{{ pod.labels.app }}`."""


class _Fallback(Exception):
    """The fast path cannot reproduce Jinja's result exactly; let Jinja render."""


@dataclass(frozen=True, slots=True)
class Text(Node):
    """A string with at least one expression; always renders to a string."""

    template: jinja2.Template
    path: Path
    uses_pod: bool
    pieces: tuple[Piece, ...] | None = None

    def render(self, ctx: Context) -> JSON:
        if self.pieces is not None:
            # Most expressions are plain lookups; joining them directly is ~10x cheaper than
            # a Jinja render, and anything unusual falls back to Jinja for the exact result.
            parts: list[str] = []
            try:
                for piece in self.pieces:  # a loop: a generator costs more, every review
                    parts.append(piece if isinstance(piece, str) else _lookup(ctx, *piece))
            except _Fallback:
                out = self._render_slow(ctx)
            else:
                out = "".join(parts)
        else:
            out = self._render_slow(ctx)
        if len(out) > MAX_RENDERED:
            raise RenderError(self.path, f"renders to {len(out)} characters (max {MAX_RENDERED})")
        return out

    def _render_slow(self, ctx: Context) -> str:
        try:
            return self.template.render(ctx.as_dict())
        except Exception as exc:  # any failure inside a user's expression is the template's
            raise RenderError(self.path, _describe(exc)) from None

    def bind(self, ctx: Context) -> Node:
        return self if self.uses_pod else Const(self.render(ctx))


@dataclass(frozen=True, slots=True)
class ParamValue(Node):
    """`"{{ params.port }}"` for an int or bool parameter: keeps the parameter's type."""

    name: str

    def render(self, ctx: Context) -> JSON:
        return getattr(ctx.params, self.name)

    def bind(self, ctx: Context) -> Node:
        return Const(self.render(ctx))


@dataclass(frozen=True, slots=True)
class MapNode(Node):
    """A map with at least one expression below it. Rendering copies a prebuilt map of the
    constant entries (in their order) and renders only the entries that have expressions."""

    items: tuple[tuple[str, Node], ...]
    uses_pod: bool
    _base: dict[str, JSON] = field(init=False, repr=False, compare=False)
    _dynamic: tuple[tuple[str, Node], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        base = {key: node.value if isinstance(node, Const) else None for key, node in self.items}
        dynamic = tuple((k, n) for k, n in self.items if not isinstance(n, Const))
        object.__setattr__(self, "_base", base)
        object.__setattr__(self, "_dynamic", dynamic)

    def render(self, ctx: Context) -> JSON:
        out = self._base.copy()
        for key, node in self._dynamic:
            out[key] = node.render(ctx)
        return out

    def bind(self, ctx: Context) -> Node:
        return _collapse(MapNode(tuple((k, n.bind(ctx)) for k, n in self.items), self.uses_pod))


@dataclass(frozen=True, slots=True)
class ListNode(Node):
    """A list with at least one expression below it, rendered like MapNode."""

    items: tuple[Node, ...]
    uses_pod: bool
    _base: list[JSON] = field(init=False, repr=False, compare=False)
    _dynamic: tuple[tuple[int, Node], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        base = [node.value if isinstance(node, Const) else None for node in self.items]
        dynamic = tuple((i, n) for i, n in enumerate(self.items) if not isinstance(n, Const))
        object.__setattr__(self, "_base", base)
        object.__setattr__(self, "_dynamic", dynamic)

    def render(self, ctx: Context) -> JSON:
        out = self._base.copy()
        for index, node in self._dynamic:
            out[index] = node.render(ctx)
        return out

    def bind(self, ctx: Context) -> Node:
        return _collapse(ListNode(tuple(n.bind(ctx) for n in self.items), self.uses_pod))


def _collapse(node: MapNode | ListNode) -> Node:
    children = [n for _, n in node.items] if isinstance(node, MapNode) else list(node.items)
    if all(isinstance(child, Const) for child in children):
        return Const(node.render(_NO_CONTEXT))
    return node


_NO_CONTEXT = Context({}, SimpleNamespace(), SimpleNamespace())


def _describe(exc: Exception) -> str:
    if isinstance(exc, jinja2.UndefinedError):
        return f"undefined value: {exc.message}"
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return f"not allowed in the sandbox: {exc}"
    return f"{type(exc).__name__}: {exc}"


Problem = tuple[Path, str]
StringOnly = Callable[[Path], bool]


@dataclass
class Compiler:
    """Turns one template's parsed YAML into a Node tree, collecting every problem."""

    params: Mapping[str, ParamSpec]
    string_only: StringOnly
    problems: list[Problem]
    declared: frozenset[str] = frozenset()
    """Every parameter name in the file, valid spec or not (its own error is reported)."""

    def compile(self, raw: JSON, path: Path) -> Node:
        if isinstance(raw, dict):
            items = tuple((str(k), self.compile(v, (*path, str(k)))) for k, v in raw.items())
            return _collapse(MapNode(items, any(n.uses_pod for _, n in items)))
        if isinstance(raw, list):
            elems = tuple(self.compile(v, (*path, i)) for i, v in enumerate(raw))
            return _collapse(ListNode(elems, any(n.uses_pod for n in elems)))
        if isinstance(raw, str) and ("{{" in raw or "{%" in raw or "{#" in raw):
            return self._compile_string(raw, path)
        return Const(raw)

    def _compile_string(self, source: str, path: Path) -> Node:
        try:
            ast = ENVIRONMENT.parse(source)
        except jinja2.TemplateSyntaxError as exc:
            self.problems.append((path, f"template syntax error: {exc.message}"))
            return Const(source)
        try:
            names = meta.find_undeclared_variables(ast)  # compiles: finds unknown filters
            compiled = ENVIRONMENT.from_string(ast)
        except jinja2.TemplateError as exc:
            self.problems.append((path, f"template error: {exc.message}"))
            return Const(source)
        unknown = sorted(names - CONTEXT_NAMES)
        if unknown:
            self.problems.append(
                (path, f"unknown name {', '.join(unknown)}; use pod, params or template")
            )
        for param in sorted(_referenced_params(ast) - set(self.params) - self.declared):
            declared = ", ".join(sorted(self.params)) or "none"
            self.problems.append(
                (path, f"params.{param} is not declared in parameters (declared: {declared})")
            )
        single = _SINGLE_PARAM.match(source)
        if single and not self.string_only(path):
            spec = self.params.get(single.group(1))
            if spec is not None and spec.type in ("int", "bool"):
                return ParamValue(spec.name)
        return Text(compiled, path, "pod" in names, _pieces(ast))


def _referenced_params(ast: nodes.Template) -> set[str]:
    found: set[str] = set()
    for node in ast.find_all(nodes.Getattr):
        assert isinstance(node, nodes.Getattr)
        if _is_params(node.node):
            found.add(node.attr)
    for item in ast.find_all(nodes.Getitem):
        assert isinstance(item, nodes.Getitem)
        if _is_params(item.node) and isinstance(item.arg, nodes.Const):
            found.add(str(item.arg.value))
    return found


def _is_params(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "params"


def _pieces(ast: nodes.Template) -> tuple[Piece, ...] | None:
    """The template as literal text and lookups, or None if it uses anything else."""
    if len(ast.body) != 1 or not isinstance(ast.body[0], nodes.Output):
        return None
    pieces: list[Piece] = []
    for output in ast.body[0].nodes:
        if isinstance(output, nodes.TemplateData):
            pieces.append(output.data)
            continue
        node: nodes.Node = output
        keys: list[str] = []
        while isinstance(node, nodes.Getattr | nodes.Getitem):
            if isinstance(node, nodes.Getattr):
                keys.append(node.attr)
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                keys.append(node.arg.value)
            else:
                return None
            node = node.node
        if not isinstance(node, nodes.Name) or node.name not in CONTEXT_NAMES or not keys:
            return None
        pieces.append((node.name, tuple(reversed(keys))))
    return tuple(pieces)


_DICT_ATTRIBUTES = frozenset(dir(dict))


def _lookup(ctx: Context, root: str, keys: tuple[str, ...]) -> str:
    value: object = getattr(ctx, root)
    for key in keys:
        if isinstance(value, dict):
            # Jinja prefers a dict's attribute (e.g. .items) to its key; leave those to Jinja.
            # A plain dict's attributes are its type's: a set lookup, not a failing getattr.
            attribute = key in _DICT_ATTRIBUTES if type(value) is dict else hasattr(value, key)
            if key not in value or attribute:
                raise _Fallback
            value = value[key]
        elif isinstance(value, SimpleNamespace) and key in value.__dict__:
            value = value.__dict__[key]
        else:
            raise _Fallback
    if type(value) is str:  # the usual case first
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int)):  # a tuple: `str | int` would be built on every call
        return str(value)
    raise _Fallback
