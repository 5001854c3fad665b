"""What changed between two snapshots: records added and removed per unit, offense and month.

A source revises its file between releases: late cases arrive, offenses are reclassified,
records are deleted. Two snapshots share the files neither changed, so only the files one
of them holds and the other does not are read; a record in a shared file is in both and
cannot have moved. Records of the two sides are paired by ``(source, incident_id)``, and
the ones left over by ``(source, occurred_at, lon, lat)``: a source without ids hashes the
whole row, so a reclassified record comes back under a new id at the same place and time.

Each record that moved is counted on both sides of its move:

- ``new``: in ``to`` only (a late case); ``deleted``: in ``from`` only;
- ``revised_out`` / ``revised_in``: in both, in another unit, offense or month in ``to``
  (counted out of the old cell and into the new one).

``added = new + revised_in``, ``removed = deleted + revised_out``, ``net = added - removed``:
the change of that cell's count between the snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from store.aggregate import Unit, unit_names
from store.engine import Cursor
from store.filters import FilterError, Filters
from store.snapshot import Snapshot

REASONS = ("new", "revised_in", "deleted", "revised_out")
LARGEST = 10


@dataclass(frozen=True)
class Diff:
    """Cells (unit, offense, month) whose count changed from one snapshot to another."""

    before: int
    after: int
    rows: pa.Table  # unit_id, name, offense, category, month, REASONS, added, removed, net
    files_read: int  # data files held by one side only: what the diff had to read
    totals: dict[str, int] = field(default_factory=dict)

    def largest(self, n: int = LARGEST) -> list[dict[str, Any]]:
        """The ``n`` (unit, offense) pairs whose count moved most, months summed."""
        if self.rows.num_rows == 0:
            return []
        sums = self.rows.group_by(["unit_id", "name", "offense"]).aggregate(
            [("added", "sum"), ("removed", "sum"), ("net", "sum")]
        )
        net = sums.column("net_sum").to_numpy()
        moved = sums.column("added_sum").to_numpy() + sums.column("removed_sum").to_numpy()
        order = sorted(range(len(net)), key=lambda i: (-abs(int(net[i])), -int(moved[i]), i))[:n]
        picked = sums.take(pa.array(order, pa.int64()))
        return [
            {
                "unit_id": r["unit_id"],
                "name": r["name"],
                "offense": r["offense"],
                "added": int(r["added_sum"]),
                "removed": int(r["removed_sum"]),
                "net": int(r["net_sum"]),
            }
            for r in picked.to_pylist()
        ]


def check_diff_filters(flt: Filters) -> None:
    """The diff is by unit, offense and month: other filters are a FilterError naming them."""
    for param, value in (
        ("hour_from", flt.hour_from),
        ("weekday", flt.weekdays or None),
        ("bbox", flt.bbox),
        ("within", flt.within),
    ):
        if value is not None:
            raise FilterError(
                param,
                value if not isinstance(value, tuple) else list(value),
                "a diff is by unit, offense and month: filter it by start, end, offense "
                "or category",
            )


def diff(before: Snapshot, after: Snapshot, unit: Unit, flt: Filters, con: Cursor) -> Diff:
    """The cells whose count changed from ``before`` to ``after``.

    ``flt``: sources and sensitivity select records; start/end, offense and category
    select the cells shown (months touching ``[start, end)``), so a record reclassified
    out of the offense asked about shows as ``revised_out`` of it. ``unit`` is read in
    each snapshot's own layer version; a unit layer ``before`` lacks counts as null there.
    """
    check_diff_filters(flt)
    if before.store.root != after.store.root:
        raise FilterError("from", before.id, "both snapshots must be of the same store")
    held_before = {f.path for f in before.manifest.files}
    held_after = {f.path for f in after.manifest.files}
    only_before = sorted(str(before.path(p)) for p in held_before - held_after)
    only_after = sorted(str(after.path(p)) for p in held_after - held_before)
    select = Filters(sources=flt.sources, include_sensitive=flt.include_sensitive)
    _side(con, "a", before, only_before, unit, select)
    _side(con, "b", after, only_after, unit, select)
    try:
        table = con.sql(_CLASSIFY).to_arrow_table()
    finally:
        con.execute("DROP TABLE IF EXISTS a; DROP TABLE IF EXISTS b")
    table = _shown(table, flt)
    names = unit_names(after, unit)
    ids = table.column("unit_id").to_pylist()
    table = table.add_column(1, "name", pa.array([names.get(i) for i in ids], pa.string()))
    totals = {r: int(pc.sum(table.column(r)).as_py() or 0) for r in REASONS}
    totals["added"] = totals["new"] + totals["revised_in"]
    totals["removed"] = totals["deleted"] + totals["revised_out"]
    totals["net"] = totals["added"] - totals["removed"]
    return Diff(before.id, after.id, table, len(only_before) + len(only_after), totals)


def _side(
    con: Cursor, name: str, snap: Snapshot, files: list[str], unit: Unit, select: Filters
) -> None:
    """Table ``name``: the records of ``files`` with their cell (unit, offense, month)."""
    has_unit = unit.kind == "h3" or (
        unit.layer in snap.manifest.layers
        and (unit.kind != "street" or snap.manifest.street_layer == unit.layer)
    )
    key = unit.key_sql() if has_unit else "NULL"
    columns = (
        "source::VARCHAR AS source, incident_id, occurred_at, lon, lat, "
        "offense::VARCHAR AS offense, category::VARCHAR AS category, "
        f"CAST(date_trunc('month', local_date) AS DATE) AS month, CAST({key} AS VARCHAR) AS unit"
    )
    if not files:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {_EMPTY}")
        return
    where, params = select.where(snap.boundary_layers)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {columns} "
        f"FROM read_parquet(?, union_by_name = true) WHERE {where}",
        [files, *params],
    )


_EMPTY = (
    "NULL::VARCHAR AS source, NULL::VARCHAR AS incident_id, NULL::TIMESTAMPTZ AS occurred_at, "
    "NULL::DOUBLE AS lon, NULL::DOUBLE AS lat, NULL::VARCHAR AS offense, "
    "NULL::VARCHAR AS category, NULL::DATE AS month, NULL::VARCHAR AS unit LIMIT 0"
)

# Every record that moved, once on each side of its move, then counted per cell.
_CLASSIFY = """
WITH same_id AS (
    SELECT a.unit AS a_unit, a.offense AS a_offense, a.category AS a_category,
           a.month AS a_month, b.unit AS b_unit, b.offense AS b_offense,
           b.category AS b_category, b.month AS b_month
    FROM a JOIN b USING (source, incident_id)
),
a_left AS (
    SELECT *, row_number() OVER (PARTITION BY source, occurred_at, lon, lat
                                 ORDER BY incident_id) AS nth
    FROM a ANTI JOIN b USING (source, incident_id)
),
b_left AS (
    SELECT *, row_number() OVER (PARTITION BY source, occurred_at, lon, lat
                                 ORDER BY incident_id) AS nth
    FROM b ANTI JOIN a USING (source, incident_id)
),
same_place AS (
    SELECT a_left.unit AS a_unit, a_left.offense AS a_offense, a_left.category AS a_category,
           a_left.month AS a_month, b_left.unit AS b_unit, b_left.offense AS b_offense,
           b_left.category AS b_category, b_left.month AS b_month
    FROM a_left JOIN b_left USING (source, occurred_at, lon, lat, nth)
),
paired AS (
    SELECT * FROM same_id UNION ALL SELECT * FROM same_place
),
moved AS (
    SELECT * FROM paired
    WHERE (a_unit, a_offense, a_month) IS DISTINCT FROM (b_unit, b_offense, b_month)
),
events AS (
    SELECT a_unit AS unit_id, a_offense AS offense, a_category AS category, a_month AS month,
           'revised_out' AS reason FROM moved
    UNION ALL
    SELECT b_unit, b_offense, b_category, b_month, 'revised_in' FROM moved
    UNION ALL
    SELECT unit, offense, category, month, 'deleted'
    FROM a_left ANTI JOIN b_left USING (source, occurred_at, lon, lat, nth)
    UNION ALL
    SELECT unit, offense, category, month, 'new'
    FROM b_left ANTI JOIN a_left USING (source, occurred_at, lon, lat, nth)
)
SELECT unit_id, offense, category, month,
       count(*) FILTER (WHERE reason = 'new')::BIGINT AS new,
       count(*) FILTER (WHERE reason = 'revised_in')::BIGINT AS revised_in,
       count(*) FILTER (WHERE reason = 'deleted')::BIGINT AS deleted,
       count(*) FILTER (WHERE reason = 'revised_out')::BIGINT AS revised_out,
       (count(*) FILTER (WHERE reason IN ('new', 'revised_in')))::BIGINT AS added,
       (count(*) FILTER (WHERE reason IN ('deleted', 'revised_out')))::BIGINT AS removed,
       (count(*) FILTER (WHERE reason IN ('new', 'revised_in'))
        - count(*) FILTER (WHERE reason IN ('deleted', 'revised_out')))::BIGINT AS net
FROM events
GROUP BY ALL
ORDER BY abs(net) DESC, added + removed DESC, unit_id NULLS LAST, offense, month
"""


def _shown(table: pa.Table, flt: Filters) -> pa.Table:
    """The cells the filters select: months touching [start, end), offenses, categories."""
    keep = pa.array([True] * table.num_rows, pa.bool_())
    month = table.column("month")
    if flt.start is not None:
        first = date(flt.start.year, flt.start.month, 1)
        keep = pc.and_(keep, pc.greater_equal(month, pa.scalar(first, pa.date32())))
    if flt.end is not None:
        keep = pc.and_(keep, pc.less(month, pa.scalar(flt.end, pa.date32())))
    if flt.offenses:
        keep = pc.and_(keep, pc.is_in(table.column("offense"), pa.array(list(flt.offenses))))
    if flt.categories:
        keep = pc.and_(keep, pc.is_in(table.column("category"), pa.array(list(flt.categories))))
    return table.filter(keep)
