"""Incidents per (unit, month, offense) of one unit family and year: the public release's input.

Boundary layers, streets and the whole area are read from the year cubes (colonia × month
× offense rows the store keeps beside every incident file); H3 cells finer than the
cubes' resolution, and files without a family's cube, are counted over the incident files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from geo.arrays import group_sum
from store.snapshot import Snapshot
from store.sql import h3_parent, quote
from store.year_cubes import year_cube

WHOLE_AREA = "total"
H3_FAMILY = "h3"
STREET_FAMILY = "street"


@dataclass(frozen=True)
class MonthlyCounts:
    """Counts by unit (H3 cells as uint64, other ids as strings, '' for the whole area)."""

    units: npt.NDArray[np.uint64] | list[str | None]
    month: npt.NDArray[np.int64]
    offense: npt.NDArray[np.int64]  # positions in offense_names
    offense_names: list[str]
    count: npt.NDArray[np.int64]


def _unit_sql(family: str, h3_res: int) -> str:
    if family == WHOLE_AREA:
        return "''"
    if family == H3_FAMILY:
        return h3_parent("h3", h3_res)  # the store's cells are at 15
    if family == STREET_FAMILY:
        return "street_id"
    return quote(family)


def monthly_counts(
    snap: Snapshot,
    family: str,
    year: int,
    months: tuple[int, ...],
    h3_res: int,
    con: duckdb.DuckDBPyConnection,
) -> MonthlyCounts:
    """Counts per (unit, month, offense) of ``months`` (1..12) of ``year`` in a snapshot.

    ``family`` is a boundary layer's name, ``street``, ``h3`` (cells at ``h3_res``) or
    ``total`` (the whole area).
    """
    if family not in (WHOLE_AREA, H3_FAMILY, STREET_FAMILY, *snap.boundary_layers):
        raise ValueError(f"unknown unit family {family!r}")
    data = snap.files_between(date(year, 1, 1), date(year + 1, 1, 1))
    if not data or not months:
        empty: list[str | None] = []
        units = np.zeros(0, np.uint64) if family == H3_FAMILY else empty
        none = np.zeros(0, np.int64)
        return MonthlyCounts(units, none, none, [], none)
    cube = _cube_family(family, snap.boundary_layers)
    if cube is not None and all(cube in f.cubes for f in data):
        return _from_cube(snap, family, cube, year, months, con)
    files = [str(snap.path(f.path)) for f in data]
    table = con.sql(
        f"SELECT {_unit_sql(family, h3_res)} AS unit, month(local_date)::BIGINT AS m, "
        "offense AS o, count(*) AS n FROM read_parquet(?) "
        "WHERE local_date >= ? AND local_date < ? AND list_contains(?, month(local_date)) "
        "GROUP BY ALL",
        params=[files, date(year, 1, 1), date(year + 1, 1, 1), list(months)],
    ).to_arrow_table()
    column = table.column("unit")
    units_out: npt.NDArray[np.uint64] | list[str | None]
    if family == H3_FAMILY:
        units_out = column.to_numpy().astype(np.uint64)
    else:
        units_out = column.cast(pa.string()).to_pylist()
    offense = pc.dictionary_encode(table.column("o").combine_chunks())
    return MonthlyCounts(
        units_out,
        table.column("m").to_numpy().astype(np.int64),
        offense.indices.to_numpy(zero_copy_only=False).astype(np.int64),
        [str(o) for o in offense.dictionary.to_pylist()],
        table.column("n").to_numpy().astype(np.int64),
    )


def _cube_family(family: str, layers: list[str]) -> str | None:
    """The cube family that holds a unit family's monthly counts, None where none does."""
    if family == WHOLE_AREA:
        return H3_FAMILY  # every record has a cell: the cells' counts sum to the whole area
    if family == H3_FAMILY:
        return None  # the release's cells are finer than the cubes' (h3:9 against h3:8)
    return family if family == STREET_FAMILY or family in layers else None


def _from_cube(
    snap: Snapshot,
    family: str,
    cube_family: str,
    year: int,
    months: tuple[int, ...],
    con: duckdb.DuckDBPyConnection,
) -> MonthlyCounts:
    """Counts per (unit, month, offense) summed over sources from the year's cube."""
    cube = year_cube(snap, cube_family, year, con)
    rows = np.flatnonzero(np.isin(cube.month, np.asarray(months, np.int8)))
    offense = cube.key[rows] // 16  # the cube's offense code (key = code * 16 + month)
    month = cube.month[rows].astype(np.int64)
    whole = family == WHOLE_AREA
    # Layer positions, -1 for records in no unit; the whole area is one unit.
    unit = np.zeros(rows.size, np.int64) if whole else cube.unit[rows].astype(np.int64) + 1
    n_offense = max(len(cube.offenses), 1)
    keys, count = group_sum((unit * 13 + month) * n_offense + offense, cube.n[rows])
    offense_out, rest = keys % n_offense, keys // n_offense
    month_out, unit_out = rest % 13, rest // 13 - 1
    names = sorted(cube.offenses, key=cube.offenses.__getitem__)
    units: list[str | None]
    if whole:
        units = [""] * keys.size
    else:
        layer = snap.manifest.street_layer if family == STREET_FAMILY else family
        assert layer is not None
        ids = snap.store.layer_ids(snap.manifest, layer)
        units = ids.take(pa.array(unit_out, mask=unit_out < 0)).cast(pa.string()).to_pylist()
    return MonthlyCounts(units, month_out, offense_out, names, count)


def nesting(
    snap: Snapshot, child: str, parent: str, con: duckdb.DuckDBPyConnection
) -> dict[str, str] | None:
    """Each ``child`` unit's ``parent`` unit, where the records say the layers nest.

    A child whose records fall in two parents (a boundary drawn a little differently) is
    left out, and so is every parent it touches (their sums are not exact). None unless 99 % of children lie in one parent and no record is in a child but
    outside every parent or the other way round.
    """
    layers = snap.boundary_layers
    if child not in layers or parent not in layers or not snap.manifest.files:
        return None
    files = [str(snap.path(f.path)) for f in snap.manifest.files]
    rows = con.sql(
        f"SELECT {quote(child)}, {quote(parent)} FROM read_parquet(?) GROUP BY ALL",
        params=[files],
    ).fetchall()
    parents: dict[str, set[str]] = {}
    for c, p in rows:
        if (c is None) != (p is None):
            return None
        if c is not None:
            parents.setdefault(str(c), set()).add(str(p))
    split = {c for c, ps in parents.items() if len(ps) > 1}
    if not parents or len(split) > 0.01 * len(parents):
        return None
    loose = {p for c in split for p in parents[c]}
    of = {c: ps.pop() for c, ps in parents.items() if c not in split}
    return {c: p for c, p in of.items() if p not in loose}
