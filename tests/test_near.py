import pytest

from injector.near import distance, nearest


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("inject", "inject", 0),
        ("inject", "injct", 1),
        ("inject", "ijnect", 2),
        ("inject", "x", 3),
        ("", "ab", 2),
    ],
)
def test_distance(a: str, b: str, expected: int) -> None:
    assert distance(a, b) == expected


def test_nearest_takes_the_closest_within_two_edits() -> None:
    known = ["observability", "observe", "payments"]
    assert nearest("observabilty", known) == "observability"
    assert nearest("observ", known) == "observe"
    assert nearest("paymnts", known) == "payments"
    assert nearest("shop", known) is None
    assert nearest("x", []) is None


def test_nearest_prefers_the_first_of_equals() -> None:
    assert nearest("ab", ["ax", "xb"]) == "ax"
