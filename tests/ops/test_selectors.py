"""Label selectors given as flags: parsed and checked as the API server checks them."""

from __future__ import annotations

import pytest

from injector.ops.selectors import matches, parse_selector


def test_a_selector_parses_and_matches() -> None:
    selector = parse_selector(
        '{"matchLabels": {"team": "shop"},'
        ' "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["batch"]}]}'
    )
    assert matches(selector, {"team": "shop"})
    assert not matches(selector, {"team": "shop", "tier": "batch"})
    assert not matches(selector, {"team": "ops"})
    assert parse_selector("") == {} and parse_selector("{}") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        ("[]", "expected a label selector"),
        ('{"matchLabel": {}}', "expected a label selector"),
        ('{"matchLabels": {"a": 1}}', "matchLabels must map label keys to string values"),
        ('{"matchExpressions": [{"operator": "In"}]}', "each matchExpression needs a key"),
        ('{"matchExpressions": [{"key": "a", "operator": "Is"}]}', "operator 'Is': expected"),
        ('{"matchExpressions": [{"key": "a", "operator": "In"}]}', "In and NotIn take values"),
        (
            '{"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}',
            "Exists and DoesNotExist none",
        ),
        ('{"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]}', "strings"),
    ],
)
def test_a_bad_selector_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_selector(text)
