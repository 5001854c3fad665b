"""Ingest in parts: each part of an input is validated, enriched and written on its own.

A part is a slice of an input file (``ingest.readers.iter_source``). What crosses parts is
small: the ids seen so far (two 64-bit hashes a record), to drop a record already met in
an earlier part, and the counts of the report. Each part is decided in input order, so
the first occurrence of an incident wins wherever it is, and a part's written files
depend only on its records and on the parts before it: the local and the Dask engines
write the same files.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ingest.arrays import constant_dictionary
from store.snapshots import DataFile
from store.transaction import IncidentWriter

U64 = npt.NDArray[np.uint64]


@dataclass
class PartResult:
    """What a prepared part reports (its records travel separately)."""

    index: int
    input_rows: int
    rejected: Counter[str]
    repairs: Counter[str]
    unknown: Counter[str]
    duplicates: int  # within the part
    rejects: pa.Table
    files: list[DataFile] = field(default_factory=list)
    accepted: int = 0
    across: int = 0  # met in an earlier part (or an earlier file)
    stored: int = 0  # already in the store
    assigned: Counter[str] = field(default_factory=Counter)  # records with a unit, per layer
    time_imputed: int = 0


@dataclass
class Written:
    """A part's kept records once written: the files and the report's counts."""

    files: list[DataFile]
    assigned: Counter[str]
    time_imputed: int


def id_hashes(ids: pa.Array | pa.ChunkedArray) -> tuple[U64, U64]:
    """Two 64-bit hashes of each id (polars' hash under two seeds), computed in this process.

    Together 128 bits: two different ids share both with probability about n² / 2^129,
    nil for any store this side of astronomy.
    """
    import polars as pl

    series = pl.Series("id", ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids)
    return (
        series.hash(seed=0x5EED).to_numpy().astype(np.uint64),
        series.hash(seed=0xC0FFEE).to_numpy().astype(np.uint64),
    )


_BITS = 27


class SeenIds:
    """The ids of earlier parts: one sorted run of hash pairs per part (16 bytes an id).

    Membership is a binary search in each run. Runs are never merged: a merge would copy
    every id held (hundreds of MB at ten million records) just when memory matters.
    """

    def __init__(self) -> None:
        self.runs: list[tuple[U64, U64]] = []
        # One bit per 2**-27 slice of the first hash (16 MB): a needle whose bit is clear
        # was never added, so only the few others are searched for in every run (at ten
        # million ids the searches had become a fifth of the ingest).
        self._bits = np.zeros(1 << (_BITS - 3), dtype=np.uint8)
        # The last part's ids (or their hashes), hashed and sorted only when a later part
        # asks: a one-part ingest (or the last part of any) never pays for either.
        self._pending: pa.Array | tuple[U64, U64] | None = None

    def __len__(self) -> int:
        pending = self._pending
        held = 0 if pending is None else len(pending[0] if isinstance(pending, tuple) else pending)
        return sum(int(h1.size) for h1, _ in self.runs) + held

    def _settle(self) -> None:
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        q1, q2 = pending if isinstance(pending, tuple) else id_hashes(pending)
        # Not a stable sort: equal first hashes are searched as a range anyway, and the
        # vectorised quicksort is the faster one.
        order = np.argsort(q1)
        s1 = q1[order]
        self.runs.append((s1, q2[order]))
        # Sorted, the hashes' bytes of the bitmap come grouped: OR each group's bits once
        # (ufunc.at, bit by bit, was a sixth of the whole step).
        byte, bit = self._slots(s1)
        starts = np.flatnonzero(np.r_[True, byte[1:] != byte[:-1]])
        masks = np.left_shift(np.uint8(1), bit)
        self._bits[byte[starts]] |= np.bitwise_or.reduceat(masks, starts)

    def _slots(self, q1: U64) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.uint8]]:
        top = q1 >> np.uint64(64 - _BITS)
        return (top >> np.uint64(3)).astype(np.intp), (top & np.uint64(7)).astype(np.uint8)

    def contains(self, q1: U64, q2: U64) -> npt.NDArray[np.bool_]:
        """Which (q1, q2) pairs were added before."""
        self._settle()
        found = np.zeros(q1.size, dtype=bool)
        if not self.runs:
            return found
        byte, bit = self._slots(q1)
        maybe = np.flatnonzero((self._bits[byte] >> bit) & 1)
        found[maybe] = self._search(q1[maybe], q2[maybe])
        return found

    def contains_ids(self, ids: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.bool_]:
        """Which ids were added before (hashed only when something was)."""
        self._settle()
        if not self.runs:
            return np.zeros(len(ids), dtype=bool)
        return self.contains(*id_hashes(ids))

    def _search(self, q1: U64, q2: U64) -> npt.NDArray[np.bool_]:
        # Sorted needles: binary searches that walk the runs in order hit the cache.
        order = np.argsort(q1)
        s1, s2 = q1[order], q2[order]
        hit = np.zeros(q1.size, dtype=bool)
        for h1, h2 in self.runs:
            lo = np.searchsorted(h1, s1, side="left")
            hi = np.searchsorted(h1, s1, side="right")
            one = hi - lo == 1
            hit[one] |= h2[lo[one]] == s2[one]
            for i in np.flatnonzero(hi - lo > 1):  # equal first hashes: rare
                hit[i] |= bool((h2[lo[i] : hi[i]] == s2[i]).any())
        found = np.empty(q1.size, dtype=bool)
        found[order] = hit
        return found

    def add(self, q1: U64, q2: U64) -> None:
        """Remember these pairs (distinct from each other and from what is held)."""
        self._settle()
        if q1.size:
            self._pending = (q1, q2)

    def add_ids(self, ids: pa.Array | pa.ChunkedArray) -> None:
        """Remember these ids (distinct from each other and from what is held)."""
        self._settle()
        if len(ids):
            self._pending = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids


def decide(
    ids: pa.Array | pa.ChunkedArray, seen: SeenIds, stored: object | None
) -> tuple[npt.NDArray[np.bool_], int, int]:
    """Keep mask of a part's (already within-part unique) ids; counts across and stored.

    A record met in an earlier part is a duplicate within the input; one whose id the
    store already holds for this source is a stored duplicate. ``stored`` is a polars
    Series of stored ids, or None when the store holds none of this source.
    """
    earlier = seen.contains_ids(ids)
    keep = ~earlier
    seen.add_ids(ids.filter(pa.array(keep)) if earlier.any() else ids)
    across = int(earlier.sum())
    in_store = 0
    if stored is not None:
        import polars as pl

        assert isinstance(stored, pl.Series)
        series = pl.Series("id", ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids)
        hit = series.is_in(stored.implode()).to_numpy() & keep
        in_store = int(hit.sum())
        keep &= ~hit
    return keep, across, in_store


def finalize(
    writer: IncidentWriter, records: pa.Table, keep: npt.NDArray[np.bool_], batch_id: str
) -> Written:
    """Write a part's kept records as year files (and their cubes)."""
    if not keep.all():
        records = records.filter(pa.array(keep))
    n = records.num_rows
    assigned = Counter(
        {
            name: n - records.column(name).null_count
            for name in (*writer.layers, "street_id")
            if name in records.column_names
        }
    )
    imputed = int(pc.sum(records.column("time_imputed")).as_py() or 0) if n else 0
    if n == 0:
        return Written([], assigned, 0)
    records = records.append_column("batch", constant_dictionary(batch_id, n))
    files = writer.write(records)
    return Written(files, assigned, imputed)
