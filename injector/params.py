"""Typed template parameters: their specs, validation, and parsing of pod annotation overrides."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias, get_args

from injector.types import JSON

ParamType = Literal["string", "int", "bool", "quantity"]
Value: TypeAlias = str | int | bool
PARAM_TYPES: tuple[ParamType, ...] = get_args(ParamType)
SPEC_KEYS = frozenset(
    {"type", "default", "enum", "pattern", "min", "max", "description", "overridable"}
)

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_INT_RE = re.compile(r"^[+-]?[0-9]+$")
# Kubernetes resource.Quantity: signed decimal number with an SI, binary SI or exponent suffix.
QUANTITY_RE = re.compile(
    r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_TYPE_WORDS: dict[ParamType, str] = {
    "string": "a string",
    "int": "an integer",
    "bool": "true or false",
    "quantity": 'a Kubernetes quantity such as "100m", "64Mi" or "2"',
}


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One declared parameter. `default` is None when the pod must supply the value."""

    name: str
    type: ParamType
    default: Value | None = None
    enum: tuple[Value, ...] = ()
    pattern: re.Pattern[str] | None = None
    min: int | None = None
    max: int | None = None
    description: str = ""
    overridable: bool = True
    """False: the operator fixed the value; an override annotation is an error."""

    def expected(self) -> str:
        """What a valid value looks like, in words, for error messages."""
        if self.enum:
            return "one of " + ", ".join(_show(v) for v in self.enum)
        words = _TYPE_WORDS[self.type]
        if self.pattern is not None:
            words += f" matching {self.pattern.pattern}"
        if self.min is not None and self.max is not None:
            words += f" from {self.min} to {self.max}"
        elif self.min is not None:
            words += f" of at least {self.min}"
        elif self.max is not None:
            words += f" of at most {self.max}"
        return words

    def check(self, value: Value) -> bool:
        """Whether a value of the right Python type satisfies enum, pattern and range."""
        if self.enum and value not in self.enum:
            return False
        if self.pattern is not None and not self.pattern.search(str(value)):
            return False
        if isinstance(value, int) and not isinstance(value, bool):
            if self.min is not None and value < self.min:
                return False
            if self.max is not None and value > self.max:
                return False
        return True

    def parse(self, text: str) -> Value:
        """Parse an annotation string into this parameter's type; ValueError if it does not fit."""
        value = _from_text(self.type, text.strip())
        if value is None or not self.check(value):
            raise ValueError(self.expected())
        return value

    def placeholder(self) -> Value:
        """A value used to test-render a template whose parameter has no default."""
        if self.enum:
            return self.enum[0]
        fallback: dict[ParamType, Value] = {"string": "x", "int": 0, "bool": False, "quantity": "1"}
        if self.type == "int" and self.min is not None:
            return self.min
        return fallback[self.type]


def _show(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _from_text(kind: ParamType, text: str) -> Value | None:
    if kind == "int":
        return _int64(int(text)) if _INT_RE.match(text) else None
    if kind == "bool":
        return {"true": True, "false": False}.get(text.lower())
    if kind == "quantity":
        return text if QUANTITY_RE.match(text) else None
    return text


def _int64(value: int) -> int | None:
    """Kubernetes integers are at most 64 bits; larger ones are not valid values."""
    return value if -(2**63) <= value < 2**63 else None


def _from_yaml(kind: ParamType, raw: JSON) -> Value | None:
    """A YAML value as this type, or None if it is not one."""
    if kind == "int":
        return _int64(raw) if isinstance(raw, int) and not isinstance(raw, bool) else None
    if kind == "bool":
        return raw if isinstance(raw, bool) else None
    if kind == "quantity":
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            raw = str(raw)
        return raw if isinstance(raw, str) and QUANTITY_RE.match(raw) else None
    return raw if isinstance(raw, str) else None


Problem = tuple[tuple[str, ...], str]
"""A spec problem: the sub-path inside the parameter (e.g. ("enum", "1")) and a message."""


def parse_spec(name: str, raw: JSON) -> tuple[ParamSpec | None, list[Problem]]:
    """Validate one entry of a template's `parameters:` map."""
    if not NAME_RE.match(name):
        return None, [
            (
                (),
                f"parameter name {name!r} must start with a letter and contain only "
                "letters, digits and _ (it is used as params.<name>)",
            )
        ]
    if not isinstance(raw, Mapping):
        return None, [((), "must be a map with at least `type`, e.g. {type: string, default: x}")]
    problems: list[Problem] = [
        ((str(key),), f"unknown key; allowed: {', '.join(sorted(SPEC_KEYS))}")
        for key in raw
        if key not in SPEC_KEYS
    ]
    kind = raw.get("type")
    if kind not in PARAM_TYPES:
        problems.append((("type",), f"must be one of {', '.join(PARAM_TYPES)}, got {kind!r}"))
        return None, problems
    spec, more = _build(name, kind, raw)
    problems += more
    return (spec if not problems else None), problems


def _build(name: str, kind: ParamType, raw: Mapping[str, JSON]) -> tuple[ParamSpec, list[Problem]]:
    problems: list[Problem] = []
    enum: list[Value] = []
    if "enum" in raw:
        if kind == "bool" or not isinstance(raw["enum"], list) or not raw["enum"]:
            problems.append((("enum",), "must be a non-empty list (and not on a bool parameter)"))
        else:
            for index, item in enumerate(raw["enum"]):
                value = _from_yaml(kind, item)
                if value is None:
                    problems.append((("enum", str(index)), f"{item!r} is not {_TYPE_WORDS[kind]}"))
                else:
                    enum.append(value)
    pattern = None
    if "pattern" in raw:
        pattern, problem = _compile_pattern(kind, raw["pattern"])
        problems += problem
    bounds: dict[str, int | None] = {"min": None, "max": None}
    for key in bounds:
        if key in raw:
            bound = raw[key]
            if kind != "int" or not isinstance(bound, int) or isinstance(bound, bool):
                problems.append(((key,), "only an int parameter takes min/max, as an integer"))
            else:
                bounds[key] = bound
    low, high = bounds["min"], bounds["max"]
    if low is not None and high is not None and low > high:
        problems.append((("min",), f"min {low} is greater than max {high}"))
    description = raw.get("description", "")
    if not isinstance(description, str):
        problems.append((("description",), "must be a string"))
        description = ""
    overridable = raw.get("overridable", True)
    if not isinstance(overridable, bool):
        problems.append(
            (("overridable",), f"must be true or false (unquoted), got {overridable!r}")
        )
        overridable = True
    spec = ParamSpec(name, kind, None, tuple(enum), pattern, low, high, description)
    if "default" in raw:
        default = _from_yaml(kind, raw["default"])
        if default is None or not spec.check(default):
            problems.append((("default",), f"{raw['default']!r} is not {spec.expected()}"))
        else:
            spec = dataclasses.replace(spec, default=default)
    elif not overridable:
        problems.append((("overridable",), "a parameter pods cannot override needs a default"))
    return dataclasses.replace(spec, overridable=overridable), problems


def _compile_pattern(kind: ParamType, raw: JSON) -> tuple[re.Pattern[str] | None, list[Problem]]:
    if kind != "string":
        return None, [(("pattern",), "only a string parameter takes a pattern")]
    if not isinstance(raw, str):
        return None, [(("pattern",), "must be a string (a Python regular expression)")]
    try:
        return re.compile(raw), []
    except re.error as exc:
        return None, [(("pattern",), f"invalid regular expression: {exc}")]
