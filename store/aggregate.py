"""Counts per spatial unit (H3 cell, boundary polygon or street segment) over a snapshot."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Literal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from store.errors import StoreError
from store.filters import FilterError, Filters, quote
from store.snapshots import Manifest
from store.store import Store

H3_MIN, H3_MAX = 5, 12
_H3_UNIT = re.compile(r"^h3:(\d{1,2})$")


@dataclass(frozen=True)
class Unit:
    """A spatial unit of aggregation."""

    kind: Literal["h3", "layer", "street"]
    res: int | None = None
    layer: str | None = None

    @classmethod
    def parse(cls, text: str, manifest: Manifest) -> Unit:
        """``h3:<5..12>``, a boundary layer name, or ``street``; FilterError otherwise."""
        match = _H3_UNIT.match(text)
        if match:
            res = int(match.group(1))
            if not H3_MIN <= res <= H3_MAX:
                raise FilterError("unit", text, f"H3 resolution must be {H3_MIN}..{H3_MAX}")
            return cls("h3", res=res)
        if text == "street":
            if manifest.street_layer is None:
                raise FilterError("unit", text, "the store has no street network")
            return cls("street", layer=manifest.street_layer)
        if text in manifest.boundary_layers:
            return cls("layer", layer=text)
        units = [f"h3:{H3_MIN}..{H3_MAX}", *manifest.boundary_layers]
        if manifest.street_layer:
            units.append("street")
        raise FilterError("unit", text, f"unknown unit; use one of: {', '.join(units)}")

    def key_sql(self) -> str:
        """SQL expression of a record's unit id (text), null when it has none."""
        if self.kind == "h3":
            assert self.res is not None
            # The res-15 cell's parent, by the bits of the H3 index (= h3.cell_to_parent).
            r = int(self.res)
            unused = (1 << (3 * (15 - r))) - 1
            return (
                f"lower(hex((h3 & ~(15::UBIGINT << 52)) | ({r}::UBIGINT << 52) "
                f"| {unused}::UBIGINT))"
            )
        if self.kind == "street":
            return "street_id"
        assert self.layer is not None
        return quote(self.layer)


@contextmanager
def _cursor(con: duckdb.DuckDBPyConnection | None) -> Iterator[duckdb.DuckDBPyConnection]:
    """The caller's cursor, or a connection of our own, closed afterwards."""
    if con is not None:
        yield con
        return
    own = duckdb.connect()
    try:
        yield own
    finally:
        own.close()


@dataclass(frozen=True)
class Counts:
    """One row per occupied unit, and what fell outside every unit."""

    table: pa.Table  # unit_id, count, and for layers: name, population
    total: int
    unassigned: int


def aggregate(
    store: Store,
    manifest: Manifest,
    unit: Unit,
    filters: Filters,
    con: duckdb.DuckDBPyConnection | None = None,
) -> Counts:
    """Count the snapshot's incidents per unit under the filters.

    Parameters
    ----------
    store, manifest
        The snapshot to read (exactly its files).
    unit
        The spatial unit.
    filters
        What to count.
    con
        A DuckDB connection or cursor (one per request in the API); a new one by default.
    """
    where, params = filters.where(manifest.boundary_layers)
    files = [str(p) for p in store.files_between(manifest, filters.start, filters.end)]
    with _cursor(con) as cur:
        if not files:
            empty = pa.table(
                {"unit_id": pa.array([], pa.string()), "count": pa.array([], pa.int64())}
            )
            return Counts(empty, 0, 0)
        key = unit.key_sql()
        sql = (
            f"SELECT {key} AS unit_id, count(*) AS count FROM read_parquet(?) "
            f"WHERE {where} GROUP BY 1"
        )
        grouped = cur.sql(sql, params=[files, *params]).to_arrow_table()
    ids = grouped.column("unit_id")
    counts = grouped.column("count")
    unassigned_mask = ids.is_null()
    unassigned = int(pc.sum(pc.filter(counts, unassigned_mask)).as_py() or 0)
    total = int(pc.sum(counts).as_py() or 0)
    table = grouped.filter(pc.invert(unassigned_mask)).sort_by(
        [("count", "descending"), ("unit_id", "ascending")]
    )
    return Counts(
        table.cast(pa.schema([("unit_id", pa.string()), ("count", pa.int64())])), total, unassigned
    )


def unit_attributes(
    store: Store, manifest: Manifest, unit: Unit, geometry: bool = False
) -> pa.Table:
    """unit_id, name, population (null where unknown) and, on request, WKB geometry.

    Layer versions are immutable, so their attributes are read once per process.
    """
    if unit.kind == "h3" or unit.layer is None:
        raise StoreError("H3 cells have no stored attributes")
    layer = manifest.layers[unit.layer]
    return _read_attributes(str(store.root / layer.path), unit.kind == "street", geometry)


@lru_cache(maxsize=32)
def _read_attributes(path: str, street: bool, geometry: bool) -> pa.Table:
    if street:
        cols = ["street_id", "name", *(["geometry"] if geometry else [])]
        t = pq.read_table(path, columns=cols)
        t = t.add_column(2, "population", pa.nulls(t.num_rows, pa.float64()))
    else:
        cols = ["id", "name", "population", *(["geometry"] if geometry else [])]
        t = pq.read_table(path, columns=cols)
    return t.rename_columns(["unit_id", "name", "population", *(["geometry"] if geometry else [])])


INTERVALS = {"day": "day", "week": "week", "month": "month"}


def timeseries(
    store: Store,
    manifest: Manifest,
    interval: str,
    filters: Filters,
    unit: Unit | None = None,
    unit_id: str | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """Counts per local day, ISO week (from Monday) or month, zeros included.

    The periods cover the filter's window clipped to the snapshot's date range (zeros
    inside it, nothing beyond); with ``unit`` and ``unit_id``, only that unit's incidents
    are counted.
    """
    if interval not in INTERVALS:
        raise FilterError("interval", interval, "use day, week or month")
    where, params = filters.where(manifest.boundary_layers)
    if unit is not None:
        if unit_id is None:
            raise FilterError("id", None, "give the unit's id with unit")
        where = f"({where}) AND {unit.key_sql()} = ?"
        params = [*params, unit_id]
    files = [str(p) for p in store.files_between(manifest, filters.start, filters.end)]
    if not files:
        return pa.table({"period": pa.array([], pa.date32()), "count": pa.array([], pa.int64())})
    trunc = INTERVALS[interval]
    with _cursor(con) as cur:
        bounds = cur.sql(
            "SELECT min(local_date), max(local_date) FROM read_parquet(?)", params=[files]
        ).fetchall()[0]
        # Periods span the filter's window clipped to the data: zeros inside, none beyond.
        first = max(filters.start or bounds[0], bounds[0]) if bounds[0] else None
        last = (
            min((filters.end - _ONE_DAY) if filters.end else bounds[1], bounds[1])
            if bounds[1]
            else None
        )
        if first is None or last is None or first > last:
            return pa.table(
                {"period": pa.array([], pa.date32()), "count": pa.array([], pa.int64())}
            )
        sql = f"""
            WITH periods AS (
                SELECT unnest(generate_series(date_trunc('{trunc}', ?::DATE),
                                              date_trunc('{trunc}', ?::DATE),
                                              INTERVAL 1 {trunc}))::DATE AS period
            ),
            counts AS (
                SELECT date_trunc('{trunc}', local_date)::DATE AS period, count(*) AS count
                FROM read_parquet(?) WHERE {where} GROUP BY 1
            )
            SELECT p.period, coalesce(c.count, 0)::BIGINT AS count
            FROM periods p LEFT JOIN counts c USING (period) ORDER BY 1
        """
        return cur.sql(sql, params=[first, last, files, *params]).to_arrow_table()


_ONE_DAY = timedelta(days=1)


def compare_periods(
    store: Store,
    manifest: Manifest,
    unit: Unit,
    filters: Filters,
    period_a: tuple[date, date],
    period_b: tuple[date, date],
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """Counts per unit in two periods (start inclusive, end exclusive): unit_id, a, b.

    Units with incidents in either period are listed; the filters' own start and end
    must be unset (the periods take their place).
    """
    if filters.start is not None or filters.end is not None:
        raise FilterError("start", filters.start, "use a_start/a_end/b_start/b_end with compare")
    for name, (lo, hi) in (("a_end", period_a), ("b_end", period_b)):
        if lo >= hi:
            raise FilterError(name, hi.isoformat(), f"must be after {lo.isoformat()}")
    where, params = filters.where(manifest.boundary_layers)
    lo, hi = min(period_a[0], period_b[0]), max(period_a[1], period_b[1])
    files = [str(p) for p in store.files_between(manifest, lo, hi)]
    if not files:
        return pa.table({"unit_id": pa.array([], pa.string()), "a": pa.array([], pa.int64()),
                         "b": pa.array([], pa.int64())})  # fmt: skip
    sql = f"""
        SELECT {unit.key_sql()} AS unit_id,
               count(*) FILTER (WHERE local_date >= ? AND local_date < ?) AS a,
               count(*) FILTER (WHERE local_date >= ? AND local_date < ?) AS b
        FROM read_parquet(?)
        WHERE ({where}) AND ((local_date >= ? AND local_date < ?) OR (local_date >= ? AND local_date < ?))
        GROUP BY 1
        HAVING unit_id IS NOT NULL
    """
    args = [*period_a, *period_b, files, *params, *period_a, *period_b]
    with _cursor(con) as cur:
        return cur.sql(sql, params=args).to_arrow_table()
