"""Bounded message lists: never over the limit, nothing lost silently."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from injector.summary import SEPARATOR, bounded, size


@given(st.lists(st.text(max_size=1500), max_size=60), st.integers(min_value=40, max_value=2048))
def test_the_joined_messages_fit_and_say_how_many_were_left_out(
    messages: list[str], limit: int
) -> None:
    kept = bounded(messages, limit)
    assert size(SEPARATOR.join(kept)) <= limit
    if size(SEPARATOR.join(messages)) <= limit:
        assert kept == messages
        return
    more = re.fullmatch(r"and (\d+) more", kept[-1])
    shown = kept[:-1] if more else kept
    left_out = int(more[1]) if more else 0
    assert len(shown) + left_out == len(messages)
    for index, message in enumerate(shown):
        # In order and whole, except a first message too long by itself, which is cut.
        cut = index == 0 and message.endswith("...") and messages[0].startswith(message[:-3])
        assert message == messages[index] or cut


def test_one_long_message_is_cut() -> None:
    assert bounded(["x" * 5000], 100) == ["x" * 97 + "..."]
    assert bounded(["x" * 5000, "y"], 100) == [
        "x" * (100 - 3 - len("; and 1 more")) + "...",
        "and 1 more",
    ]


def test_everything_is_kept_when_it_all_fits() -> None:
    """Found by hypothesis: the room kept for "and N more" must not cut a list that fits."""
    messages = ["", "0", "0" * 11, "0" * 11, ""]
    assert bounded(messages, 40) == messages


def test_the_limit_is_in_bytes_and_a_character_is_never_split() -> None:
    wide = ["ä" * 400, "日本" * 300]
    kept = bounded(wide, 1024)
    assert size(SEPARATOR.join(kept)) <= 1024
    assert kept[0] == "ä" * 400 and kept[1] == "and 1 more"
    [cut] = bounded(["日本語" * 1000], 100)
    assert cut.endswith("...") and size(cut) <= 100 and "\ufffd" not in cut
