"""Cumulative year cubes: the counts of any run of whole years for one subtraction.

A span cube holds, for every (offense, source, unit) cell a family's cubes ever counted,
the running total of its incidents up to each year: ``cum[i]`` is the count of the years
before ``first + i``. The years ``[a, b)`` of a cell are then ``cum[b - first] - cum[a -
first]``, the same two rows whether the store spans six years or sixty, so a question's cost
follows the cells it selects and never the years between its bounds (SPEC §3: cumulative
sums where long ranges would otherwise cost more than short ones). Months at either end of
a range that are not whole years come from the year cubes (store/year_cubes.py).

One cube per (snapshot, family), built once from the year rollup (or every file's cubes
in a store of a few files) and kept while the snapshot is; cells are offense-major, so an
offense's cells are one slice, as in a year cube.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from geo.arrays import group_sum, ranges
from store.cubes import H3_FAMILY, h3_parent, rollup_key
from store.filters import Filters
from store.snapshot import Kind, Snapshot
from store.year_cubes import offense_codes, year_cube

# Memory for span cubes per store: a family's cube at ten times Mexico City's records
# (sixty-nine years) is tens of MB (benchmarks/RESULTS.md, "Scale").
SPAN_CUBES = Kind("span cubes", bytes=1024 * 2**20)


@dataclass(frozen=True)
class SpanCube:
    """A family's cells, offense-major, and their running totals by year."""

    first: int  # the first year counted
    offenses: dict[str, int]  # offense name -> code (cells of code c: starts[c]..starts[c+1])
    category: npt.NDArray[np.object_]  # by offense code
    sensitive: npt.NDArray[np.bool_]  # by offense code
    starts: npt.NDArray[np.int64]
    source: npt.NDArray[np.int16]  # by cell
    sources: list[str]
    unit: npt.NDArray[Any]  # by cell: layer position (-1: no unit) or H3 cell (0: none)
    cum: npt.NDArray[np.int32]  # (years + 1, cells)

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        return sum(a.nbytes for a in (self.starts, self.source, self.unit, self.cum))

    @property
    def years(self) -> int:
        """How many years the cube counts."""
        return int(self.cum.shape[0]) - 1

    def counts(
        self, flt: Filters, start_year: int, end_year: int
    ) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64]]:
        """Each selected cell's unit and its count over the years ``[start_year, end_year)``."""
        codes = offense_codes(self.offenses, self.category, self.sensitive, flt)
        cells = ranges(self.starts[codes], self.starts[codes + 1] - self.starts[codes])
        if flt.sources:
            wanted = [i for i, s in enumerate(self.sources) if s in flt.sources]
            cells = cells[np.isin(self.source[cells], wanted)]
        lo = min(max(start_year - self.first, 0), self.years)
        hi = min(max(end_year - self.first, 0), self.years)
        if hi <= lo:
            return self.unit[:0], np.zeros(0, np.int64)
        n = self.cum[hi, cells].astype(np.int64) - self.cum[lo, cells]
        return self.unit[cells], n


_building: dict[tuple[int, str], threading.Lock] = {}
_guard = threading.Lock()


def span_cube(snap: Snapshot, family: str, con: duckdb.DuckDBPyConnection) -> SpanCube:
    """The family's span cube, built once per snapshot (concurrent askers wait for it)."""
    key = (id(snap), family)
    with _guard:
        lock = _building.setdefault(key, threading.Lock())
    with lock:  # a build takes a second on a large store: one build, not one per request
        try:
            return snap.memo(SPAN_CUBES, family, lambda: _load(snap, family, con))
        finally:
            with _guard:
                _building.pop(key, None)


def _load(snap: Snapshot, family: str, con: duckdb.DuckDBPyConnection) -> SpanCube:
    manifest = snap.manifest
    yearly = rollup_key(family, yearly=True)
    if yearly in manifest.rollups:
        files = [str(snap.path(manifest.rollups[yearly]))]
    else:
        files = [str(snap.path(f.cubes[family])) for f in manifest.files if family in f.cubes]
    # The "no unit" key typed as the column: a plain 0 would make DuckDB widen H3 cells.
    unit = "coalesce(cell, 0::UBIGINT)" if family == H3_FAMILY else "coalesce(unit, -1::INTEGER)"
    if not files:
        return _empty(family)
    table: pa.Table = con.sql(
        f"SELECT offense::VARCHAR AS offense, source::VARCHAR AS source, "
        f"{unit} AS u, year(month)::INTEGER AS y, "
        "any_value(category)::VARCHAR AS category, bool_or(sensitive) AS sensitive, "
        "sum(n)::BIGINT AS n FROM read_parquet(?) GROUP BY ALL ORDER BY offense, source, u, y",
        params=[files],
    ).to_arrow_table()
    if not table.num_rows:
        return _empty(family)
    offense = table.column("offense").combine_chunks().dictionary_encode()
    names = offense.dictionary.to_pylist()  # first appearance: sorted, as the rows are
    off = offense.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    source = table.column("source").combine_chunks().dictionary_encode()
    src = source.indices.to_numpy(zero_copy_only=False).astype(np.int16)
    dtype = np.uint64 if family == H3_FAMILY else np.int32
    u = table.column("u").to_numpy().astype(dtype)
    year = table.column("y").to_numpy().astype(np.int64)
    new = np.r_[True, (off[1:] != off[:-1]) | (src[1:] != src[:-1]) | (u[1:] != u[:-1])]
    cell = np.cumsum(new) - 1
    first_row = np.flatnonzero(new)
    first, last = int(year.min()), int(year.max())
    cum = np.zeros((last - first + 2, first_row.size), np.int32)
    cum[year - first + 1, cell] = table.column("n").to_numpy()
    np.cumsum(cum, axis=0, out=cum)
    cell_offense = off[first_row]
    starts = np.searchsorted(cell_offense, np.arange(len(names) + 1), side="left")
    by_offense = np.searchsorted(off, np.arange(len(names)), side="left")
    category = np.empty(len(names), dtype=object)
    category[:] = table.column("category").take(pa.array(by_offense)).to_pylist()
    sensitive = table.column("sensitive").to_numpy(zero_copy_only=False)[by_offense].astype(bool)
    return SpanCube(
        first,
        {n: i for i, n in enumerate(names)},
        category,
        sensitive,
        starts.astype(np.int64),
        src[first_row],
        source.dictionary.to_pylist(),
        u[first_row],
        cum,
    )


def _empty(family: str) -> SpanCube:
    dtype = np.uint64 if family == H3_FAMILY else np.int32
    return SpanCube(
        0,
        {},
        np.zeros(0, object),
        np.zeros(0, bool),
        np.zeros(1, np.int64),
        np.zeros(0, np.int16),
        [],
        np.zeros(0, dtype),
        np.zeros((1, 0), np.int32),
    )


def range_counts(
    snap: Snapshot,
    family: str,
    res: int | None,
    flt: Filters,
    within: int | None,
    con: duckdb.DuckDBPyConnection,
) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64]] | None:
    """Counts per unit key (layer position, -1 for none; or H3 cell at ``res``).

    Over any month-aligned window the filters name (open bounds: the snapshot's first or
    last year): its whole years from the span cube, the months of a year it covers in part
    from that year's cube. ``within`` keeps one layer position only (``within`` on the
    unit's own layer). None when some data file has no cube of the family.
    """
    files = snap.manifest.files
    if not all(family in f.cubes for f in files):
        return None
    if not files:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    start = flt.start or date(min(f.year for f in files), 1, 1)
    end = flt.end or date(max(f.year for f in files) + 1, 1, 1)
    whole_from = start.year if (start.month, start.day) == (1, 1) else start.year + 1
    whole_to = end.year
    parts: list[tuple[npt.NDArray[Any], npt.NDArray[np.int64]]] = []
    if whole_to > whole_from:
        parts.append(span_cube(snap, family, con).counts(flt, whole_from, whole_to))
    for year in sorted({start.year, end.year}):
        if (
            not whole_from <= year < whole_to
            and date(year, 1, 1) < end
            and start < date(year + 1, 1, 1)
        ):
            cube = year_cube(snap, family, year, con)
            rows = cube.rows(flt, year)
            parts.append((cube.unit[rows], cube.n[rows]))
    # One dtype for every part: a year with no files has empty int64 units, and uint64
    # cells concatenated with int64 would become float64 and lose their low bits.
    dtype = np.uint64 if family == H3_FAMILY else np.int64
    unit = np.concatenate([p[0].astype(dtype) for p in parts]) if parts else np.zeros(0, dtype)
    n = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    if within is not None:
        keep = unit == within
        unit, n = unit[keep], n[keep]
    if family == H3_FAMILY and res is not None:
        cells = unit.astype(np.uint64)
        unit = np.where(cells == 0, np.uint64(0), h3_parent(cells, res))
    return group_sum(unit, n)
