"""Lists of messages bounded for the people who read them: kubectl output, events, logs."""

from __future__ import annotations

from collections.abc import Sequence

LIMIT = 1024
"""Bytes (UTF-8) an answer's messages (a denial, or its warnings) may take in all."""
SEPARATOR = "; "


def size(text: str) -> int:
    """What `text` weighs where the limit applies: its UTF-8 bytes."""
    return len(text.encode())


def bounded(messages: Sequence[str], limit: int = LIMIT) -> list[str]:
    """The first messages that fit in `limit` bytes joined by SEPARATOR, then "and N more";
    a first message too long by itself is cut with "...". The result joined never exceeds
    `limit`."""
    if size(SEPARATOR.join(messages)) <= limit:
        return list(messages)
    kept: list[str] = []
    used = 0
    for index, message in enumerate(messages):
        left = len(messages) - index - 1
        tail = size(f"{SEPARATOR}and {left} more") if left else 0
        cost = size(message) + (size(SEPARATOR) if kept else 0)
        if used + cost + tail <= limit:
            kept.append(message)
            used += cost
            continue
        if kept:  # the previous message reserved room for this tail
            left += 1
        else:  # cut the first one rather than say nothing useful
            kept.append(_cut(message, limit - tail - size("...")) + "...")
        if left:
            kept.append(f"and {left} more")
        return kept
    return kept


def _cut(text: str, room: int) -> str:
    """The longest prefix of `text` within `room` bytes, never splitting a character."""
    return text.encode()[: max(room, 0)].decode("utf-8", "ignore")
