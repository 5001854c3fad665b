"""Year cubes in memory: exact counts per unit without a query engine round trip.

A question about a year or two (a dashboard's "this year, this offense, by colonia") reads
the same cube rows a DuckDB query would, but from arrays kept in memory per (snapshot,
family, year), sorted by offense then month: the rows of one offense and a range of months
are one slice, and the counts per unit one ``bincount``. DuckDB's fixed cost per query
(binding, reading Parquet footers, a few milliseconds) was most of such a question's time.
Whole years come from the span cubes (store/span_cubes.py); the year cubes give the months
at either end of a range, and the public release's monthly counts (store/monthly.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from geo.arrays import ranges
from store.cubes import H3_FAMILY
from store.filters import Filters
from store.snapshot import Kind, Snapshot

# Memory for year cubes, per store a process serves; least recently used go first.
YEAR_CUBES = Kind("year cubes", bytes=512 * 2**20)


@dataclass(frozen=True)
class YearCube:
    """One family's cube rows of one year, offense-major then by month."""

    offenses: dict[str, int]  # offense name -> code (rows of code c: starts[c]..starts[c+1])
    category: npt.NDArray[np.object_]  # by offense code
    sensitive: npt.NDArray[np.bool_]  # by offense code
    starts: npt.NDArray[np.int64]
    month: npt.NDArray[np.int8]  # 1..12
    source: npt.NDArray[np.int16]
    sources: list[str]
    unit: npt.NDArray[Any]  # layer position (-1: no unit) or H3 cell (0: none)
    n: npt.NDArray[np.int64]
    key: npt.NDArray[np.int64]  # offense code * 16 + month, ascending

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        arrays = (self.starts, self.month, self.source, self.unit, self.n, self.key)
        return sum(a.nbytes for a in arrays) + 64 * len(self.offenses)

    def rows(self, flt: Filters, year: int) -> npt.NDArray[np.int64]:
        """Row positions matching the filters within this year."""
        codes = offense_codes(self.offenses, self.category, self.sensitive, flt)
        first = 1 if flt.start is None or flt.start.year < year else flt.start.month
        last = 13 if flt.end is None or flt.end.year > year else flt.end.month
        # Rows are sorted by (offense code, month): one slice per offense, found at once.
        lo = np.searchsorted(self.key, codes * 16 + first, side="left")
        hi = np.searchsorted(self.key, codes * 16 + last, side="left")
        rows = ranges(lo, np.maximum(hi - lo, 0))
        if flt.sources:
            wanted = [i for i, s in enumerate(self.sources) if s in flt.sources]
            rows = rows[np.isin(self.source[rows], wanted)]
        return rows


def offense_codes(
    offenses: dict[str, int],
    category: npt.NDArray[np.object_],
    sensitive: npt.NDArray[np.bool_],
    flt: Filters,
) -> npt.NDArray[np.int64]:
    """The codes of a cube's offenses that the filters' offenses, categories and sensitivity keep."""
    codes = np.arange(len(offenses))
    if flt.offenses:
        codes = np.array([offenses[o] for o in flt.offenses if o in offenses], dtype=np.int64)
    if flt.categories:
        codes = codes[np.isin(category[codes], list(flt.categories))]
    if not flt.include_sensitive:
        codes = codes[~sensitive[codes]]
    return codes


def _load(snap: Snapshot, family: str, year: int, con: duckdb.DuckDBPyConnection) -> YearCube:
    files = [
        str(snap.path(f.cubes[family]))
        for f in snap.files_between(date(year, 1, 1), date(year + 1, 1, 1))
    ]
    unit = "cell" if family == H3_FAMILY else "unit"
    empty = np.zeros(0, np.int64)
    if not files:
        return YearCube(
            {},
            np.zeros(0, object),
            np.zeros(0, bool),
            np.zeros(1, np.int64),
            empty.astype(np.int8),
            empty.astype(np.int16),
            [],
            empty,
            empty,
            empty,
        )
    table: pa.Table = con.sql(
        f"SELECT offense::VARCHAR AS offense, month(month)::TINYINT AS m, source::VARCHAR AS source, "
        f"any_value(category)::VARCHAR AS category, bool_or(sensitive) AS sensitive, {unit} AS u, "
        "sum(n)::BIGINT AS n FROM read_parquet(?) WHERE month >= ? AND month < ? "
        "GROUP BY offense, m, source, u ORDER BY offense, m",
        params=[files, date(year, 1, 1), date(year + 1, 1, 1)],
    ).to_arrow_table()
    offense = table.column("offense").combine_chunks().dictionary_encode()
    names = offense.dictionary.to_pylist()
    # Rows are ordered by name; dictionary order is first appearance, which is the same.
    codes = offense.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(names)))])
    first = starts[:-1]
    category = np.empty(len(names), dtype=object)
    category[:] = table.column("category").take(pa.array(first)).to_pylist()
    sensitive = table.column("sensitive").to_numpy(zero_copy_only=False)[first].astype(bool)
    source = table.column("source").combine_chunks().dictionary_encode()
    units = table.column("u")
    if family == H3_FAMILY:
        unit_values = units.fill_null(0).to_numpy().astype(np.uint64)
    else:
        unit_values = units.fill_null(-1).to_numpy().astype(np.int32)
    month = table.column("m").to_numpy().astype(np.int8)
    return YearCube(
        {n: i for i, n in enumerate(names)},
        category,
        sensitive,
        starts.astype(np.int64),
        month,
        source.indices.to_numpy(zero_copy_only=False).astype(np.int16),
        source.dictionary.to_pylist(),
        unit_values,
        table.column("n").to_numpy().astype(np.int64),
        codes * 16 + month.astype(np.int64),
    )


def year_cube(snap: Snapshot, family: str, year: int, con: duckdb.DuckDBPyConnection) -> YearCube:
    """The year's cube of a family, read once while the snapshot's values are kept."""
    return snap.memo(YEAR_CUBES, (family, year), lambda: _load(snap, family, year, con))
