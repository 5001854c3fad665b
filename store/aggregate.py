"""Counts per spatial unit (H3 cell, boundary polygon or street segment) over a snapshot."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from store import span_cubes
from store.cubes import (
    CUBE_H3_RES,
    H3_FAMILY,
    STREET_FAMILY,
    month_aligned,
    rollup_key,
    year_aligned,
)
from store.errors import StoreError
from store.filters import FilterError, Filters
from store.layers import read_layer_columns
from store.snapshot import Kind, Snapshot
from store.snapshots import DataFile, Manifest
from store.sql import h3_parent, quote

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

    @property
    def cube_family(self) -> str | None:
        """The cube family that holds this unit's counts, None when none does."""
        if self.kind == "h3":
            assert self.res is not None
            return H3_FAMILY if self.res <= CUBE_H3_RES else None
        if self.kind == "street":
            return STREET_FAMILY
        return self.layer

    def key_sql(self, cube: bool = False) -> str:
        """SQL expression of a record's (or a cube row's) unit id, text, null for none."""
        if self.kind == "h3":
            assert self.res is not None
            # The parent of the record's res-15 cell (or of the cube's coarser cell).
            return f"lower(hex({h3_parent('cell' if cube else 'h3', self.res)}))"
        if cube:
            return "unit"  # the unit's position in its layer
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
class _Plan:
    """Where a query reads its counts: cube files or incident files."""

    data: list[DataFile]  # the incident files the query's dates touch
    files: list[str]  # what it reads: their cubes, or themselves
    cube: bool
    where: str
    params: list[Any]
    # A cube's layer units are positions in the layer version: these are its ids.
    ids: pa.Array | None = None

    @property
    def count(self) -> str:
        """SQL of the count of a group (cast it: a cube's sum is a HUGEINT)."""
        return "sum(n)" if self.cube else "count(*)"

    @property
    def date(self) -> str:
        """The column dates are compared with (months in a cube)."""
        return "month" if self.cube else "local_date"

    def key(self, unit: Unit) -> str:
        """SQL of the unit id (a position in the layer for a cube's layer units)."""
        return unit.key_sql(cube=self.cube)

    def unit_param(self, unit_id: str) -> str | int:
        """The value ``key`` takes for the unit ``unit_id``."""
        return _position(self.ids, unit_id) if self.ids is not None else unit_id

    def unit_ids(self, keys: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
        """Unit ids (text) of the values of ``key``."""
        if self.ids is None:
            return keys
        return self.ids.take(keys)


# The position of an id the layer does not have. Not -1, which in-memory cubes use for
# "outside every unit": an unknown id counts zero, as it would over the incidents.
UNKNOWN_POSITION = -2


def _position(ids: pa.Array, unit_id: str) -> int:
    found = int(pc.index(ids, unit_id).as_py())
    return found if found >= 0 else UNKNOWN_POSITION


def _plan(
    snap: Snapshot,
    unit: Unit | None,
    filters: Filters,
    window: tuple[date | None, date | None],
    months: bool = True,
    years: bool = False,
) -> _Plan:
    """Read cubes where they answer exactly, the incident files otherwise.

    ``window`` bounds the dates read; ``months`` says whether the rest of the query
    (its periods) is month-aligned too, ``years`` whether it only needs whole years (no
    month grain in its answer), which lets year-aligned windows read the year rollup.
    Without a unit any family will do: every record has an H3 cell.
    """
    manifest = snap.manifest
    data = snap.files_between(*window)
    # Bounds past the whole snapshot, not just past these files: a rollup holds them all.
    filters = _clip(filters, manifest.files)
    family = unit.cube_family if unit is not None else H3_FAMILY
    layer = unit.layer if unit is not None and unit.kind == "layer" else None
    if (
        months
        and family is not None
        and filters.fits_cube(layer)
        and all(family in f.cubes for f in data)
    ):
        ids = snap.store.layer_ids(manifest, unit.layer) if unit and unit.layer else None
        where, params = filters.where(
            manifest.boundary_layers,
            cube=True,
            position=(lambda i: _position(ids, i)) if ids is not None else None,
        )
        yearly = rollup_key(family, True)
        whole_years = year_aligned(filters.start) and year_aligned(filters.end)
        if years and yearly in manifest.rollups and whole_years:
            # Whole years: one file however many batches and parts hold them; its zone
            # maps prune to the offenses and years asked.
            cubes = [str(snap.path(manifest.rollups[yearly]))]
        else:
            cubes = [str(snap.path(f.cubes[family])) for f in data]
        return _Plan(data, cubes, True, where, params, ids)
    where, params = filters.where(manifest.boundary_layers)
    return _Plan(data, [str(snap.path(f.path)) for f in data], False, where, params)


def _clip(filters: Filters, data: list[DataFile]) -> Filters:
    """Drop date bounds that exclude no record of these files.

    A window that reaches past the data (an open-ended query, or the public delay's cut
    after the last record) then reads the month cubes even when its bound is mid-month.
    """
    if not data or (filters.start is None and filters.end is None):
        return filters
    first = min(date.fromisoformat(f.min_date) for f in data)
    last = max(date.fromisoformat(f.max_date) for f in data)
    start = None if filters.start is not None and filters.start <= first else filters.start
    end = None if filters.end is not None and filters.end > last else filters.end
    if start is filters.start and end is filters.end:
        return filters
    return replace(filters, start=start, end=end)


@dataclass(frozen=True)
class Counts:
    """One row per occupied unit, and what fell outside every unit."""

    table: pa.Table  # unit_id, count, and for layers: name, population
    total: int
    unassigned: int


def aggregate(
    snap: Snapshot,
    unit: Unit,
    filters: Filters,
    con: duckdb.DuckDBPyConnection | None = None,
) -> Counts:
    """Count the snapshot's incidents per unit under the filters.

    Parameters
    ----------
    snap
        The snapshot to read (exactly its files).
    unit
        The spatial unit.
    filters
        What to count.
    con
        A DuckDB connection or cursor (one per request in the API); a new one by default.
    """
    plan = _plan(snap, unit, filters, (filters.start, filters.end), years=True)
    with _cursor(con) as cur:
        if plan.cube:
            hot = _hot(snap, unit, filters, plan, cur)
            if hot is not None:
                return hot
        if not plan.files:
            empty = pa.table(
                {"unit_id": pa.array([], pa.string()), "count": pa.array([], pa.int64())}
            )
            return Counts(empty, 0, 0)
        sql = (
            f"SELECT {plan.key(unit)} AS unit_id, {plan.count}::BIGINT AS count FROM read_parquet(?) "
            f"WHERE {plan.where} GROUP BY 1"
        )
        # execute, not sql(): a relation binds the query (reading Parquet footers) once
        # more before it runs, about a millisecond of a cube query.
        rows = cur.execute(sql, [plan.files, *plan.params]).fetchall()
    keys = [r[0] for r in rows]
    key_type = pa.string() if unit.kind == "h3" or not plan.cube else pa.int32()
    ids = plan.unit_ids(pa.array(keys, key_type))
    grouped = pa.table({"unit_id": ids, "count": pa.array([r[1] for r in rows], pa.int64())})
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


def _hot(
    snap: Snapshot,
    unit: Unit,
    filters: Filters,
    plan: _Plan,
    cur: duckdb.DuckDBPyConnection,
) -> Counts | None:
    """The counts from span and year cubes in memory (store/span_cubes.py)."""
    family = unit.cube_family
    assert family is not None
    within = None
    if filters.within is not None:
        assert plan.ids is not None  # within on a cube is the unit's own layer
        within = _position(plan.ids, filters.within[1])
    got = span_cubes.range_counts(snap, family, unit.res, filters, within, cur)
    if got is None:
        return None
    keys, n = got
    none = keys == (0 if unit.kind == "h3" else -1)
    unassigned = int(n[none].sum())
    if unit.kind == "h3":
        ids = pa.array([format(int(c), "x") for c in keys[~none].tolist()], pa.string())
    else:
        assert plan.ids is not None
        ids = plan.ids.take(pa.array(keys[~none].astype(np.int64)))
    table = pa.table({"unit_id": ids.cast(pa.string()), "count": pa.array(n[~none], pa.int64())})
    table = table.filter(pc.greater(table.column("count"), 0))
    table = table.sort_by([("count", "descending"), ("unit_id", "ascending")])
    return Counts(table, int(n.sum()), unassigned)


def unit_attributes(snap: Snapshot, unit: Unit, geometry: bool = False) -> pa.Table:
    """unit_id, name, population (null where unknown) and, on request, WKB geometry.

    Layer versions are immutable, so their attributes are read once per process.
    """
    if unit.kind == "h3" or unit.layer is None:
        raise StoreError("H3 cells have no stored attributes")
    path = snap.path(snap.layer(unit.layer).path)
    extra = ("geometry",) if geometry else ()
    if unit.kind == "street":
        t = read_layer_columns(path, ("street_id", "name", *extra))
        t = t.add_column(2, "population", pa.nulls(t.num_rows, pa.float64()))
    else:
        t = read_layer_columns(path, ("id", "name", "population", *extra))
    return t.rename_columns(["unit_id", "name", "population", *extra])


# A layer's shapes, parsed once per snapshot (a few layers; colonias are ~10 MB).
SHAPES = Kind("layer shapes", items=8)


def layer_shapes(snap: Snapshot, unit: Unit) -> tuple[dict[str, int], Any, Any]:
    """A layer's ids (to positions), geometries and representative points, once per version."""
    assert unit.layer is not None

    def parse() -> tuple[dict[str, int], Any, Any]:
        attrs = unit_attributes(snap, unit, geometry=True)
        shapes = shapely.from_wkb(attrs.column("geometry").to_numpy(zero_copy_only=False))
        index = {str(u): i for i, u in enumerate(attrs.column("unit_id").to_pylist())}
        return index, shapes, shapely.point_on_surface(shapes)

    return snap.memo(SHAPES, (unit.kind, unit.layer), parse)


def unit_names(snap: Snapshot, unit: Unit) -> dict[str, str | None]:
    """Each unit's display name by id (empty for H3 cells, which have none)."""
    if unit.kind == "h3" or unit.layer is None:
        return {}
    attrs = unit_attributes(snap, unit)
    return dict(
        zip(
            attrs.column("unit_id").cast(pa.string()).to_pylist(),
            attrs.column("name").to_pylist(),
            strict=True,
        )
    )


def time_unknown(
    snap: Snapshot, filters: Filters, con: duckdb.DuckDBPyConnection | None = None
) -> int | None:
    """Records an hour window leaves out because their time of day is unknown.

    Those matching every other filter whose hour is imputed; None without an hour window.
    """
    if filters.hour_from is None:
        return None
    rest = replace(filters, hour_from=None, hour_to=None)
    files = [str(snap.path(f.path)) for f in snap.files_between(rest.start, rest.end)]
    if not files:
        return 0
    where, params = rest.where(snap.boundary_layers)
    with _cursor(con) as cur:
        row = cur.execute(
            f"SELECT count(*) FROM read_parquet(?) WHERE ({where}) AND time_imputed",
            [files, *params],
        ).fetchone()
    return int(row[0]) if row else 0


INTERVALS = {"day": "day", "week": "week", "month": "month"}


def new_records(
    snap: Snapshot, filters: Filters, con: duckdb.DuckDBPyConnection | None = None
) -> int:
    """Records under the filters in the snapshot's new data files (its parent lacked them).

    A replacing release (``ingest --replace``) rewrites its source's files: all are new.
    """
    parent = snap.manifest.parent
    old = {f.path for f in snap.store.snapshot(parent).manifest.files} if parent else set()
    files = [str(snap.path(f.path)) for f in snap.manifest.files if f.path not in old]
    if not files:
        return 0
    where, params = filters.where(snap.manifest.boundary_layers)
    with _cursor(con) as cur:
        sql = f"SELECT count(*) FROM read_parquet(?) WHERE {where}"
        (count,) = cur.execute(sql, [files, *params]).fetchall()[0]
        return int(count)


def timeseries(
    snap: Snapshot,
    interval: str,
    filters: Filters,
    unit: Unit | None = None,
    unit_id: str | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """Counts per local day, ISO week (from Monday) or month, zeros included.

    The periods cover the filter's window clipped to the snapshot's date range (zeros
    inside it, nothing beyond); with ``unit`` and ``unit_id``, only that unit's incidents
    are counted. ``partial`` marks a period the window or the data cover only in part
    (a week cut by the last record's day).
    """
    if interval not in INTERVALS:
        raise FilterError("interval", interval, "use day, week or month")
    if unit is not None and unit_id is None:
        raise FilterError("id", None, "give the unit's id with unit")
    empty = pa.table(
        {
            "period": pa.array([], pa.date32()),
            "count": pa.array([], pa.int64()),
            "partial": pa.array([], pa.bool_()),
        }
    )
    plan = _plan(snap, unit, filters, (filters.start, filters.end), interval == "month")
    where, params = plan.where, plan.params
    if unit is not None:
        where = f"({where}) AND {plan.key(unit)} = ?"
        assert unit_id is not None
        params = [*params, plan.unit_param(unit_id)]
    span = _span(plan, filters)
    if span is None:
        return empty
    first, last = span
    trunc = INTERVALS[interval]
    sql = f"""
        WITH periods AS (
            SELECT unnest(generate_series(date_trunc('{trunc}', ?::DATE),
                                          date_trunc('{trunc}', ?::DATE),
                                          INTERVAL 1 {trunc}))::DATE AS period
        ),
        counts AS (
            SELECT date_trunc('{trunc}', {plan.date})::DATE AS period, {plan.count}::BIGINT AS count
            FROM read_parquet(?) WHERE {where} GROUP BY 1
        )
        SELECT p.period, coalesce(c.count, 0)::BIGINT AS count,
               p.period < ?::DATE OR (p.period + INTERVAL 1 {trunc})::DATE > ?::DATE AS partial
        FROM periods p LEFT JOIN counts c USING (period) ORDER BY 1
    """
    # A period is partial where the window or the data begins or ends inside it: its
    # count covers only the days from ``first`` to ``last``.
    after_last = last + _ONE_DAY
    with _cursor(con) as cur:
        args = [first, last, plan.files, *params, first, after_last]
        return cur.sql(sql, params=args).to_arrow_table()


_ONE_DAY = timedelta(days=1)


def _span(plan: _Plan, filters: Filters) -> tuple[date, date] | None:
    """First and last day of the filter's window clipped to the data (None: no overlap)."""
    if not plan.data:
        return None
    lowest = min(date.fromisoformat(f.min_date) for f in plan.data)
    highest = max(date.fromisoformat(f.max_date) for f in plan.data)
    first = max(filters.start or lowest, lowest)
    last = min((filters.end - _ONE_DAY) if filters.end else highest, highest)
    return (first, last) if first <= last else None


@dataclass(frozen=True)
class UnitSeries:
    """Counts per (unit, period): a space-time cube, occupied bins only."""

    periods: list[date]  # every period of the window, oldest first (zeros included)
    unit_ids: list[str]  # one per bin
    period_index: list[int]  # position of each bin's period in ``periods``
    counts: list[int]


def unit_series(
    snap: Snapshot,
    unit: Unit,
    interval: str,
    filters: Filters,
    con: duckdb.DuckDBPyConnection | None = None,
) -> UnitSeries:
    """Counts per unit and per day, ISO week or month over the filter's window.

    Periods run as in :func:`timeseries`; incidents outside every unit are left out.
    """
    if interval not in INTERVALS:
        raise FilterError("interval", interval, "use day, week or month")
    plan = _plan(snap, unit, filters, (filters.start, filters.end), interval == "month")
    span = _span(plan, filters)
    if span is None:
        return UnitSeries([], [], [], [])
    trunc = INTERVALS[interval]
    with _cursor(con) as cur:
        periods = [
            r[0]
            for r in cur.execute(
                f"SELECT unnest(generate_series(date_trunc('{trunc}', ?::DATE), "
                f"date_trunc('{trunc}', ?::DATE), INTERVAL 1 {trunc}))::DATE",
                list(span),
            ).fetchall()
        ]
        rows = cur.execute(
            f"SELECT {plan.key(unit)} AS unit_id, date_trunc('{trunc}', {plan.date})::DATE, "
            f"{plan.count}::BIGINT FROM read_parquet(?) WHERE {plan.where} "
            "GROUP BY ALL HAVING unit_id IS NOT NULL",
            [plan.files, *plan.params],
        ).fetchall()
    position = {p: i for i, p in enumerate(periods)}
    keys = pa.array(
        [r[0] for r in rows], pa.string() if unit.kind == "h3" or not plan.cube else pa.int32()
    )
    ids = plan.unit_ids(keys).to_pylist()
    return UnitSeries(periods, ids, [position[r[1]] for r in rows], [r[2] for r in rows])


def compare_periods(
    snap: Snapshot,
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
    lo, hi = min(period_a[0], period_b[0]), max(period_a[1], period_b[1])
    aligned = all(month_aligned(d) for d in (*period_a, *period_b))
    whole = all(year_aligned(d) for d in (*period_a, *period_b))
    plan = _plan(snap, unit, filters, (lo, hi), aligned, years=whole)
    if not plan.files:
        return pa.table(
            {
                "unit_id": pa.array([], pa.string()),
                "a": pa.array([], pa.int64()),
                "b": pa.array([], pa.int64()),
            }
        )
    d, n = plan.date, plan.count
    sql = f"""
        SELECT {plan.key(unit)} AS unit_id,
               coalesce({n} FILTER (WHERE {d} >= ? AND {d} < ?), 0)::BIGINT AS a,
               coalesce({n} FILTER (WHERE {d} >= ? AND {d} < ?), 0)::BIGINT AS b
        FROM read_parquet(?)
        WHERE ({plan.where}) AND (({d} >= ? AND {d} < ?) OR ({d} >= ? AND {d} < ?))
        GROUP BY 1
        HAVING unit_id IS NOT NULL
    """
    args = [*period_a, *period_b, plan.files, *plan.params, *period_a, *period_b]
    with _cursor(con) as cur:
        table = cur.sql(sql, params=args).to_arrow_table()
    return table.set_column(0, "unit_id", plan.unit_ids(table.column("unit_id")))
