"""Grouping replies that give no readable answer by how alike their texts are (self-consistency's fallback)."""

from __future__ import annotations as _annotations

from collections.abc import Sequence
from difflib import SequenceMatcher

__all__ = ("SIMILAR_PREFIX", "similarity", "similarity_keys")

SIMILAR_PREFIX = "≈ "
"""Marks a ballot that stands for a group of alike texts rather than an extracted answer."""


def _words(text: str) -> list[str]:
    return text.lower().split()


def similarity(a: str, b: str) -> float:
    """How alike two texts are, word by word, from 0 to 1; the same whichever comes first."""
    first, second = sorted((_words(a), _words(b)))
    if not first and not second:
        return 1.0
    return SequenceMatcher(None, first, second).ratio()


def similarity_keys(texts: Sequence[str], threshold: float) -> list[str]:
    """A ballot for each text: texts joined by a chain of pairs at least ``threshold`` alike share one.

    A group's ballot is :data:`SIMILAR_PREFIX` and the group's smallest normalised text, so the
    grouping and its ballots do not depend on the order of ``texts``.
    """
    normalised = [" ".join(_words(text)) for text in texts]
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            if root(i) != root(j) and similarity(normalised[i], normalised[j]) >= threshold:
                parent[root(j)] = root(i)
    smallest: dict[int, str] = {}
    for i, text in enumerate(normalised):
        group = root(i)
        smallest[group] = min(smallest.get(group, text), text)
    return [SIMILAR_PREFIX + smallest[root(i)] for i in range(len(texts))]
