"""Offense and category names as a user types them, resolved to the names the data holds.

A name that is not one of the snapshot's is matched case-, accent- and space-insensitively
(``usurpacion de identidad`` is ``USURPACIÓN DE IDENTIDAD``); a name that still matches none is refused with the
closest real ones, never answered with an empty table.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, replace

from store.filters import FilterError, Filters
from store.query import offense_triples
from store.snapshot import Kind, Snapshot


def fold(name: str) -> str:
    """Case-, accent- and space-insensitive key for an offense or category name."""
    decomposed = unicodedata.normalize("NFD", name.strip().upper())
    bare = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    return " ".join(bare.split())


@dataclass(frozen=True)
class Names:
    """The offense and category names a requester may see."""

    offenses: Collection[str]
    categories: Collection[str]


NAMES = Kind("offense and category names", items=8)


def snapshot_names(snap: Snapshot) -> Names:
    """Every offense and category of a snapshot (kept with it)."""

    def build() -> Names:
        triples = offense_triples(snap)
        return Names(frozenset(o for o, _, _ in triples), frozenset(c for _, c, _ in triples))

    return snap.memo(NAMES, (), build)


def resolve(flt: Filters, known: Names, suggest: Names) -> Filters:
    """The filters with each name replaced by the one real name it stands for.

    ``known`` are the names that exist (kept as they are); ``suggest`` the names a
    misspelt one is resolved to or compared with (those the requester may see).
    """
    offenses = tuple(_one("offense", o, known.offenses, suggest.offenses) for o in flt.offenses)
    categories = tuple(
        _one("category", c, known.categories, suggest.categories) for c in flt.categories
    )
    if offenses == flt.offenses and categories == flt.categories:
        return flt
    return replace(flt, offenses=offenses, categories=categories)


def _one(param: str, value: str, known: Collection[str], suggest: Collection[str]) -> str:
    if value in known:
        return value
    by_fold: dict[str, list[str]] = {}
    for name in suggest:
        by_fold.setdefault(fold(name), []).append(name)
    hits = by_fold.get(fold(value), [])
    if len(hits) == 1:
        return hits[0]
    close = difflib.get_close_matches(fold(value), list(by_fold), n=3, cutoff=0.6)
    names = sorted(name for key in close for name in by_fold[key])
    hint = f"; the closest are {', '.join(names)}" if names else ""
    raise FilterError(param, value, f"unknown {param}{hint} (/v1/meta lists them)")
