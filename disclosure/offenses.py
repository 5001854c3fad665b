"""The offense sets of the public release: a forest of ``*``, categories and offenses.

``*`` holds every non-sensitive offense; under it each category's non-sensitive part, and
under those the non-sensitive offenses. A wholly sensitive category is a root over its
offenses; a sensitive offense of a mixed category is a root on its own, so sensitive
counts are never inside ``*`` or a mixed category's figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from disclosure.rules import NotPublished

ALL = "*"
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Forest:
    """Offense sets by node: ``*``, ``c:<category>``, ``o:<offense>``."""

    names: tuple[str, ...]
    parent: Ints  # -1 for a root
    sensitive: npt.NDArray[np.bool_]
    children: Ints
    index: dict[str, int]
    mixed: frozenset[str]  # categories with sensitive and other offenses
    category_of: dict[str, str]

    def node(self, offenses: tuple[str, ...], categories: tuple[str, ...]) -> tuple[int, bool]:
        """The node a public request's offense filters name (-1: none the release holds).

        Also whether that leaves sensitive offenses out; NotPublished for more than one
        value of either.
        """
        for name, values in (("offense", offenses), ("category", categories)):
            if len(values) > 1:
                raise NotPublished(
                    name,
                    ", ".join(values),
                    f"public figures are per one {name}; an API key opens any set",
                )
        if offenses:
            offense = offenses[0]
            if categories and self.category_of.get(offense) != categories[0]:
                return -1, False
            return self.index.get("o:" + offense, -1), False
        if categories:
            category = categories[0]
            return self.index.get("c:" + category, -1), category in self.mixed
        return self.index[ALL], bool(self.sensitive.any())


@lru_cache(maxsize=8)
def forest(triples: tuple[tuple[str, str, bool], ...]) -> Forest:
    """The forest of a snapshot's (offense, category, sensitive) triples."""
    sensitive_offense: dict[str, bool] = {}
    category_of: dict[str, str] = {}
    for offense, category, flag in sorted(triples):
        sensitive_offense[offense] = sensitive_offense.get(offense, False) or flag
        category_of.setdefault(offense, category)
    cats: dict[str, set[bool]] = {}
    for offense, category in category_of.items():
        cats.setdefault(category, set()).add(sensitive_offense[offense])
    names = [ALL]
    parent = [-1]
    flags = [False]
    for category in sorted(cats):
        names.append("c:" + category)
        wholly = cats[category] == {True}
        parent.append(-1 if wholly else 0)
        flags.append(wholly)
    index = {n: i for i, n in enumerate(names)}
    for offense in sorted(category_of):
        category = category_of[offense]
        flag = sensitive_offense[offense]
        mixed_part = flag and cats[category] != {True}
        names.append("o:" + offense)
        parent.append(-1 if mixed_part else index["c:" + category])
        flags.append(flag)
    index = {n: i for i, n in enumerate(names)}
    parents = np.array(parent, dtype=np.int64)
    children = np.bincount(parents[parents >= 0], minlength=len(names)).astype(np.int64)
    mixed = frozenset(c for c, f in cats.items() if len(f) == 2)
    return Forest(
        names=tuple(names),
        parent=parents,
        sensitive=np.array(flags, dtype=bool),
        children=children,
        index=index,
        mixed=mixed,
        category_of=category_of,
    )
