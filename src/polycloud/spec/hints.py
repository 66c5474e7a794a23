""" "Did you mean" hints: the closest known name by edit distance."""

from __future__ import annotations

from collections.abc import Iterable


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The nearest choice, if it is near enough to be a plausible typo (case-insensitive)."""
    best: tuple[int, str] | None = None
    for choice in choices:
        d = edit_distance(word.lower(), choice.lower())
        if best is None or (d, choice) < best:
            best = (d, choice)
    if best is None or best[0] > max(2, len(word) // 3):
        return None
    return best[1]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` or an empty string."""
    near = closest(word, choices)
    return f" (did you mean {near!r}?)" if near else ""
