"""Near misses: how far a typed word is from the ones we know, and the nearest of them."""

from __future__ import annotations

from collections.abc import Iterable

NEAR = 2
"""Edit distance within which a word is taken for a typo of one we know."""


def distance(a: str, b: str, limit: int = NEAR) -> int:
    """Levenshtein distance, cut off above `limit` (returns limit + 1)."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, char in enumerate(a, 1):
        current = [i]
        for j, other in enumerate(b, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != other))
            )
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


def nearest(word: str, known: Iterable[str], limit: int = NEAR) -> str | None:
    """The known word closest to `word` within `limit` edits (the first of equals), or None."""
    best: str | None = None
    best_distance = limit + 1
    for candidate in known:
        found = distance(word, candidate, limit)
        if found < best_distance:
            best, best_distance = candidate, found
    return best
