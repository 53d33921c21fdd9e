"""YAML parsing that remembers the line of every value, so errors can point at it."""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from injector.types import JSON

# The C loader is much faster, but not every platform's PyYAML ships it.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    """`("containers", 0, "image")` → `containers[0].image`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass
class Located:
    """A parsed YAML document plus the 1-based line of each path in it."""

    data: JSON
    lines: dict[Path, int] = field(default_factory=dict)
    duplicate_keys: list[tuple[Path, int]] = field(default_factory=list)

    def line(self, path: Path) -> int | None:
        """The line of `path`, or of its closest parent that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def parse(text: str) -> Located:
    """Parse one YAML document; raises yaml.YAMLError with a line on bad syntax."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Located(None)
        located = Located(None)
        _index(node, (), located)  # first: it refuses recursive and exploding aliases
        located.data = loader.construct_document(node)
    finally:
        loader.dispose()
    return located


MAX_NODES = 100_000
"""Values in one document, counting each use of an alias: stops "billion laughs" documents."""


class TooLarge(yaml.YAMLError):
    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__("too many values")
        self.problem = f"more than {MAX_NODES} values (counting each use of an alias)"
        self.problem_mark = mark


class RecursiveAlias(yaml.YAMLError):
    """An alias inside the node it refers to: the value would be infinitely deep."""

    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__("an alias refers to a node that contains it")
        self.problem = "an alias refers to a node that contains it (a recursive value)"
        self.problem_mark = mark


def _index(
    node: yaml.Node, path: Path, located: Located, ancestors: frozenset[int] = frozenset()
) -> None:
    if id(node) in ancestors:
        raise RecursiveAlias(node.start_mark)
    if len(located.lines) >= MAX_NODES:
        raise TooLarge(node.start_mark)
    ancestors = ancestors | {id(node)}
    located.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                located.duplicate_keys.append((path + (key,), key_node.start_mark.line + 1))
            seen.add(key)
            _index(value_node, path + (key,), located, ancestors)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index(item, path + (index,), located, ancestors)
