from __future__ import annotations

import re

import pytest

from injector.params import ParamSpec, parse_spec


def spec(**raw: object) -> ParamSpec:
    parsed, problems = parse_spec("p", raw)
    assert not problems, problems
    assert parsed is not None
    return parsed


def problems_of(raw: object, name: str = "p") -> list[str]:
    parsed, problems = parse_spec(name, raw)
    assert parsed is None
    return [f"{'.'.join(path)}: {message}" for path, message in problems]


@pytest.mark.parametrize(
    ("raw", "text", "value"),
    [
        ({"type": "string"}, " hello ", "hello"),
        ({"type": "int"}, "42", 42),
        ({"type": "int"}, "-7", -7),
        ({"type": "bool"}, "TRUE", True),
        ({"type": "bool"}, "false", False),
        ({"type": "quantity"}, "250m", "250m"),
        ({"type": "quantity"}, "1.5Gi", "1.5Gi"),
        ({"type": "quantity"}, "2e3", "2e3"),
        ({"type": "string", "enum": ["a", "b"]}, "b", "b"),
        ({"type": "int", "min": 1, "max": 3}, "3", 3),
        ({"type": "string", "pattern": "^v[0-9]+$"}, "v12", "v12"),
    ],
)
def test_annotation_values_parse_to_the_parameter_type(
    raw: dict[str, object], text: str, value: object
) -> None:
    assert spec(**raw).parse(text) == value


@pytest.mark.parametrize(
    ("raw", "text", "expected"),
    [
        ({"type": "int"}, "4.5", "an integer"),
        ({"type": "int", "min": 1, "max": 3}, "4", "an integer from 1 to 3"),
        ({"type": "int", "min": 1}, "0", "an integer of at least 1"),
        ({"type": "int", "max": 1}, "2", "an integer of at most 1"),
        ({"type": "bool"}, "yes", "true or false"),
        ({"type": "quantity"}, "lots", 'a Kubernetes quantity such as "100m", "64Mi" or "2"'),
        ({"type": "string", "enum": ["debug", "info"]}, "verbose", "one of debug, info"),
        ({"type": "string", "pattern": "^v[0-9]+$"}, "x1", "a string matching ^v[0-9]+$"),
    ],
)
def test_invalid_values_say_what_was_expected(
    raw: dict[str, object], text: str, expected: str
) -> None:
    parameter = spec(**raw)
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        parameter.parse(text)
    assert parameter.expected() == expected


def test_defaults_are_typed_and_checked() -> None:
    assert spec(type="quantity", default=1).default == "1"
    assert spec(type="bool", default=False).default is False
    assert spec(type="int", default=0, min=0).default == 0
    assert spec(type="string").default is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "float"}, "type: must be one of string, int, bool, quantity, got 'float'"),
        ({}, "type: must be one of string, int, bool, quantity, got None"),
        ({"type": "int", "default": "5"}, "default: '5' is not an integer"),
        ({"type": "int", "default": 9, "max": 5}, "default: 9 is not an integer of at most 5"),
        ({"type": "string", "default": 3}, "default: 3 is not a string"),
        ({"type": "bool", "default": "yes"}, "default: 'yes' is not true or false"),
        ({"type": "quantity", "default": "fast"}, "default: 'fast' is not a Kubernetes quantity"),
        ({"type": "string", "enum": []}, "enum: must be a non-empty list"),
        ({"type": "bool", "enum": [True]}, "enum: must be a non-empty list"),
        ({"type": "int", "enum": [1, "two"]}, "enum.1: 'two' is not an integer"),
        ({"type": "int", "pattern": "x"}, "pattern: only a string parameter takes a pattern"),
        ({"type": "string", "pattern": "("}, "pattern: invalid regular expression"),
        ({"type": "string", "min": 1}, "min: only an int parameter takes min/max"),
        ({"type": "int", "min": 5, "max": 1}, "min: min 5 is greater than max 1"),
        ({"type": "int", "max": 1.5}, "max: only an int parameter takes min/max"),
        ({"type": "string", "colour": "red"}, "colour: unknown key; allowed: default,"),
        ({"type": "string", "description": 5}, "description: must be a string"),
        ("string", ": must be a map with at least `type`"),
    ],
)
def test_bad_specs_are_reported_with_their_field(raw: object, message: str) -> None:
    assert any(p.startswith(message) for p in problems_of(raw)), problems_of(raw)


@pytest.mark.parametrize("name", ["1st", "log-level", "a.b", "_x", "x" * 64])
def test_parameter_names_must_be_usable_as_attributes(name: str) -> None:
    assert "must start with a letter" in problems_of({"type": "string"}, name)[0]


def test_placeholders_satisfy_the_spec() -> None:
    assert spec(type="int", min=3).placeholder() == 3
    assert spec(type="string", enum=["b", "a"]).placeholder() == "b"
    assert spec(type="quantity").placeholder() == "1"
    assert spec(type="bool").placeholder() is False
