"""What happened in a place, from the records: one scan for /v1/area's whole answer.

Categories, offenses, months, streets and units of one layer come from one GROUP BY
over the records inside the area (a drawn one is pruned to its bounding box first), and
are rolled up here: five questions cost one pass over the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from store.filters import Filters
from store.snapshot import Snapshot
from store.sql import quote

_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class AreaCounts:
    """The records inside an area under the filters, counted five ways."""

    offenses: pa.Table  # category, offense, count; largest first
    months: list[tuple[date, int]]  # every month of the window clipped to the data
    streets: pa.Table  # unit_id, count; largest first (empty without a street layer)
    units: pa.Table  # unit_id, count of the layer asked; largest first

    @property
    def total(self) -> int:
        """Records inside."""
        return int(pc.sum(self.offenses.column("count")).as_py() or 0)


def area_counts(snap: Snapshot, filters: Filters, layer: str | None, con: Any) -> AreaCounts:
    """Count the records under ``filters`` by offense, month, street and ``layer``'s unit."""
    data = snap.files_between(filters.start, filters.end)
    manifest = snap.manifest
    columns = [
        "category::VARCHAR AS category",
        "offense::VARCHAR AS offense",
        "date_trunc('month', local_date)::DATE AS month",
        ("street_id::VARCHAR" if manifest.street_layer else "NULL::VARCHAR") + " AS street",
        (f"{quote(layer)}::VARCHAR" if layer else "NULL::VARCHAR") + " AS unit",
    ]
    where, params = filters.where(manifest.boundary_layers)
    if data:
        sql = (
            f"SELECT {', '.join(columns)}, count(*)::BIGINT AS n FROM read_parquet(?) "
            f"WHERE {where} GROUP BY ALL"
        )
        files = [str(snap.path(f.path)) for f in data]
        grouped = con.sql(sql, params=[files, *params]).to_arrow_table()
    else:
        empty = {c: pa.array([], pa.string()) for c in ("category", "offense", "street", "unit")}
        grouped = pa.table(
            {**empty, "month": pa.array([], pa.date32()), "n": pa.array([], pa.int64())}
        )
    offenses = _summed(grouped, ["category", "offense"])
    return AreaCounts(
        offenses,
        _months(grouped, data, filters),
        _summed(grouped, ["street"], "unit_id"),
        _summed(grouped, ["unit"], "unit_id"),
    )


def _summed(grouped: pa.Table, keys: list[str], rename: str | None = None) -> pa.Table:
    """Counts by ``keys`` (nulls left out), largest first, ties by key."""
    table = (
        grouped.filter(pc.is_valid(grouped.column(keys[0])))
        .group_by(keys)
        .aggregate([("n", "sum")])
    )
    table = (
        table.rename_columns([*keys, "count"])
        if table.num_rows
        else pa.table(
            {**{k: pa.array([], pa.string()) for k in keys}, "count": pa.array([], pa.int64())}
        )
    )
    table = table.select([*keys, "count"]).sort_by(
        [("count", "descending"), *((k, "ascending") for k in keys)]
    )
    if rename is not None:
        table = table.rename_columns([rename, "count"])
    return table


def _months(grouped: pa.Table, data: list[Any], filters: Filters) -> list[tuple[date, int]]:
    """Every month of the window clipped to the data, zeros included (as /v1/timeseries)."""
    if not data:
        return []
    lowest = min(date.fromisoformat(f.min_date) for f in data)
    highest = max(date.fromisoformat(f.max_date) for f in data)
    first = max(filters.start or lowest, lowest)
    last = min((filters.end - _ONE_DAY) if filters.end else highest, highest)
    if first > last:
        return []
    by_month = _summed(grouped, ["month"])
    counts = dict(
        zip(by_month.column("month").to_pylist(), by_month.column("count").to_pylist(), strict=True)
    )
    out = []
    month = first.replace(day=1)
    while month <= last:
        out.append((month, int(counts.get(month, 0))))
        month = (month + timedelta(days=32)).replace(day=1)
    return out
