"""The Snapshot object: one per published snapshot, and what it derives kept within bounds."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pytest

from store import Store, StoreError
from store.aggregate import Unit, aggregate
from store.filters import Filters
from store.snapshot import Kind, Memo, Snapshot
from store.year_cubes import YEAR_CUBES


def test_one_object_per_published_snapshot(sample_store: Store) -> None:
    snap = sample_store.snapshot()
    assert snap is sample_store.snapshot()
    assert snap is sample_store.snapshot(snap.id)
    assert snap.id == sample_store.snapshots()[-1]
    older = sample_store.snapshot(1)
    assert older.id == 1 and older is not snap and not older.manifest.files


def test_unknown_and_empty_stores_say_so(sample_store: Store, empty_store: Store) -> None:
    with pytest.raises(StoreError, match="no snapshot 99"):
        sample_store.snapshot(99)
    with pytest.raises(StoreError, match="is empty: ingest a file first"):
        empty_store.snapshot()


def test_derived_values_are_built_once_and_shared(sample_store: Store) -> None:
    snap = sample_store.snapshot()
    built: list[int] = []
    kind = Kind("test values", items=4)

    def make() -> int:
        built.append(1)
        return 42

    assert snap.memo(kind, "k", make) == 42
    assert sample_store.snapshot().memo(kind, "k", make) == 42
    assert built == [1]
    # Another snapshot of the same store keeps values of its own.
    assert sample_store.snapshot(1).memo(kind, "k", lambda: 7) == 7


def test_a_manifest_changed_in_memory_shares_nothing(sample_store: Store) -> None:
    """A snapshot read without its cubes is not answered from the real one's year cubes."""
    snap = sample_store.snapshot()
    unit = Unit("layer", layer="colonia")
    flt = Filters(start=date(2023, 1, 1), end=date(2024, 1, 1))
    with_cubes = aggregate(snap, unit, flt)  # reads (and keeps) the 2023 year cube
    assert snap.memo(YEAR_CUBES, ("colonia", 2023), lambda: None) is not None
    files = [replace(f, cubes={}) for f in snap.manifest.files]
    plain = Snapshot(sample_store, replace(snap.manifest, rollups={}, files=files))
    assert plain.memo(YEAR_CUBES, ("colonia", 2023), lambda: None) is None
    assert aggregate(plain, unit, flt).table.equals(with_cubes.table)


def test_memo_keeps_the_most_recent_items() -> None:
    memo, kind = Memo(), Kind("few", items=2)
    for i in range(5):
        memo.get(kind, i, lambda i=i: i)
    assert memo.get(kind, 4, lambda: -1) == 4 and memo.get(kind, 3, lambda: -1) == 3
    assert memo.get(kind, 0, lambda: -1) == -1  # evicted, built again


def test_memo_bounds_bytes() -> None:
    memo, kind = Memo(), Kind("bytes", bytes=10_000)
    for i in range(10):
        memo.get(kind, i, lambda: np.zeros(500))  # 4 kB each: two fit
    assert memo.get(kind, 9, lambda: None) is not None
    assert memo.get(kind, 8, lambda: None) is not None
    assert memo.get(kind, 0, lambda: None) is None
    # A value larger than the kind's whole budget is returned and not kept.
    assert memo.get(kind, "big", lambda: np.zeros(10_000)).size == 10_000
    assert memo.get(kind, "big", lambda: np.zeros(1)).size == 1
