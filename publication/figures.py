"""What a request may see: exact counts for a key, cells of the public release otherwise.

Routes and tiles ask here, so /v1/aggregate, /v1/timeseries, /v1/compare and the tiles
publish the same numbers for the same question (docs/privacy.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from disclosure.offenses import ALL
from disclosure.periods import Period
from disclosure.rules import NotPublished, PublicRules
from geo.cells import cells_to_latlng, hex_to_cells
from publication import areas, tables
from store.aggregate import Unit, aggregate, layer_shapes
from store.engine import Cursor
from store.filters import FilterError, Filters
from store.names import Names
from store.snapshot import Kind, Snapshot


@dataclass(frozen=True)
class PublicView:
    """How a public request is answered: one period and one offense set of the release."""

    period: Period
    node: int  # -1: an offense or category the snapshot does not hold
    k: int
    sensitive_excluded: bool
    published_until: date  # the first day not published
    filters: Filters  # what the figures count (echoed in responses)

    def describe(self, withheld: bool) -> dict[str, Any]:
        """The ``privacy`` block of a public response."""
        return {
            "k": self.k,
            "withheld": withheld,
            "sensitive_excluded": self.sensitive_excluded,
            "published_until": self.published_until.isoformat(),
        }


def today() -> date:
    """Today (UTC), the reference of the publication delay."""
    return datetime.now(UTC).date()


def coarse(rules: PublicRules, unit: Unit | None) -> bool:
    """Whether sensitive offenses may be shown on this unit (None: the whole area)."""
    if unit is None:
        return rules.coarse(None)
    return rules.coarse(unit.kind, unit.layer, unit.res)


def refusal(exc: NotPublished) -> FilterError:
    """The 400 a public request gets for a figure the release does not hold."""
    return FilterError(exc.parameter, exc.value, exc.message)


def check_public_filters(flt: Filters, drawn: bool = False) -> None:
    """Hours and weekdays are not published: FilterError naming the parameter.

    A drawn area is answered by the whole units it touches (publication/areas.py) where
    the route does so (``drawn``), and refused elsewhere.
    """
    if not drawn and flt.drawn() is not None:
        raise FilterError(
            "within",
            "circle" if flt.circle is not None else "polygon",
            "this public figure is not given for a drawn area; /v1/aggregate, /v1/timeseries, "
            "/v1/compare and /v1/area answer one by the whole units it touches, an API key "
            "opens exact areas",
        )
    if flt.hour_from is not None:
        raise FilterError(
            "hour_from",
            flt.hour_from,
            "public figures are not split by hour; an API key opens hour windows",
        )
    if flt.weekdays:
        raise FilterError(
            "weekday",
            list(flt.weekdays),
            "public figures are not split by weekday; an API key opens weekdays",
        )


def public_view(
    snap: Snapshot,
    rules: PublicRules,
    flt: Filters,
    unit: Unit | None,
    period: Period | None = None,
    drawn: bool = False,
) -> PublicView:
    """The release cells a public request reads; FilterError for what is not published.

    The period is ``period``, else ``[start, end)`` which must be one calendar year,
    quarter or month, else the snapshot's last whole year. ``drawn``: the route answers
    a drawn area by the units it touches.
    """
    flt.check(snap.boundary_layers)
    check_public_filters(flt, drawn)
    if unit is not None and unit.kind == "h3" and (unit.res or 0) > rules.finest_h3:
        raise FilterError(
            "unit",
            f"h3:{unit.res}",
            f"public H3 cells go down to h3:{rules.finest_h3}; an API key opens finer ones",
        )
    if period is None:
        if (flt.start is None) != (flt.end is None):
            missing = "end" if flt.end is None else "start"
            raise FilterError(missing, None, "public figures need both start and end (or neither)")
    until = tables.cutoff(rules, today())
    if period is None:
        if flt.start is not None and flt.end is not None:
            try:
                period = Period.parse(flt.start, flt.end)
            except NotPublished as exc:
                raise refusal(exc) from None
        else:
            period = tables.default_period(snap.manifest, until)
    if period.end > until:
        raise FilterError(
            "end",
            period.end.isoformat(),
            f"public figures end before {until.isoformat()} ({rules.delay_days}-day "
            "delay, whole months)",
        )
    tree = tables.forest(snap)
    try:
        node, excluded = tree.node(flt.offenses, flt.categories)
    except NotPublished as exc:
        raise refusal(exc) from None
    sensitive = node >= 0 and bool(tree.sensitive[node])
    if sensitive and not coarse(rules, unit):
        excluded = True
    shown = replace(flt, start=period.start, end=period.end, include_sensitive=sensitive)
    return PublicView(
        period, node, rules.k_sensitive if sensitive else rules.k, excluded, until, shown
    )


@dataclass(frozen=True)
class Published:
    """Counts per unit as a role may see them: the withheld units left out."""

    table: pa.Table  # unit_id, count
    total: int | None  # None when withheld
    unassigned: int | None
    withheld: bool
    # A drawn area, to the public: the units it touches, whose cells answer for it.
    area_units: list[str] | None = None


def published_counts(
    snap: Snapshot,
    unit: Unit,
    flt: Filters,
    pub: PublicView | None,
    rules: PublicRules,
    cursor: Cursor,
) -> Published:
    """What /v1/aggregate shows of the counts per unit.

    All of them to a key; to the public, the release's published cells of the unit's
    family (tiles publish exactly these).
    """
    if pub is None:
        counts = aggregate(snap, unit, flt, cursor)
        return Published(counts.table, counts.total, counts.unassigned, False)
    ids, values, withheld = _cells(snap, unit, pub, rules, cursor)
    outside = _outside(snap, unit, pub, rules, cursor)
    table = pa.table({"unit_id": pa.array(ids, pa.string()), "count": pa.array(values, pa.int64())})
    if pub.filters.bbox is not None or pub.filters.within is not None:
        table = table.filter(pa.array(_selected(snap, unit, ids, pub.filters), pa.bool_()))
    order = np.lexsort((np.arange(table.num_rows), -table.column("count").to_numpy()))
    table = table.take(pa.array(order))
    shape = pub.filters.drawn()
    if shape is None:
        return Published(table, total(snap, pub, rules, cursor), outside, withheld)
    return _touched(snap, unit, table, withheld, shape)


def _touched(snap: Snapshot, unit: Unit, table: pa.Table, withheld: bool, shape: Any) -> Published:
    """The published cells of the units a drawn area touches; their sum if all are published.

    A touched unit without a published cell is a zero or withheld: the sum is then unknown.
    """
    units = areas.covered_at_most(snap, unit, shape, MAX_TOUCHED)
    ids = table.column("unit_id").to_pylist()
    keep = set(units)
    table = table.filter(pa.array([i in keep for i in ids], pa.bool_()))
    whole = table.num_rows == len(units)
    summed = int(pc.sum(table.column("count")).as_py() or 0) if whole else None
    return Published(table, summed, None, withheld or not whole, units)


def _cells(
    snap: Snapshot, unit: Unit, pub: PublicView, rules: PublicRules, cursor: Any
) -> tuple[list[str], Any, bool]:
    if pub.node < 0:
        return [], np.zeros(0, np.int64), True
    table = tables.published_table(
        snap, tables.unit_family(unit), pub.period.year, rules, cursor, pub.published_until
    )
    ids, values, withheld, _ = table.shown(
        pub.period.code, pub.node, (unit.res or 0) if unit.kind == "h3" else 0
    )
    return ids, values, withheld


def _outside(
    snap: Snapshot, unit: Unit, pub: PublicView, rules: PublicRules, cursor: Any
) -> int | None:
    if unit.kind == "h3":
        return 0  # every record has a cell
    if pub.node < 0:
        return None
    table = tables.published_table(
        snap, tables.unit_family(unit), pub.period.year, rules, cursor, pub.published_until
    )
    return table.value_of(None, pub.period.code, pub.node)


def total(snap: Snapshot, pub: PublicView, rules: PublicRules, cursor: Any) -> int | None:
    """The whole area's published count of the view's period and offense set."""
    if pub.node < 0:
        return None
    table = tables.published_table(
        snap, tables.TOTAL, pub.period.year, rules, cursor, pub.published_until
    )
    return table.value_of("", pub.period.code, pub.node)


def series(
    snap: Snapshot,
    pub: PublicView,
    rules: PublicRules,
    unit: Unit | None,
    unit_id: str | None,
    months: list[date],
    cursor: Any,
) -> list[int | None]:
    """Published monthly counts of one unit (or the whole area); None where withheld."""
    if pub.node < 0:
        return [None] * len(months)
    fam = tables.unit_family(unit) if unit_id is not None else tables.TOTAL
    res = unit.res if unit is not None and unit.kind == "h3" and unit_id is not None else 0
    out: list[int | None] = []
    by_year = {
        year: tables.published_table(snap, fam, year, rules, cursor, pub.published_until)
        for year in sorted({m.year for m in months})
    }  # one table a year, not one lookup a month
    for month in months:
        table = by_year[month.year]
        key = unit_id if fam != tables.TOTAL else ""
        out.append(table.value_of(key, Period.month(month).code, pub.node, res or 0))
    return out


def area_series(
    snap: Snapshot,
    pub: PublicView,
    rules: PublicRules,
    unit: Unit,
    months: list[date],
    cursor: Any,
) -> tuple[list[str], list[int | None]]:
    """A drawn area's public monthly series: the units it touches and their sum.

    The units are of ``unit``'s kind; a month is None where any unit's is withheld or zero.
    """
    drawn = pub.filters.drawn()
    assert drawn is not None
    units = areas.covered_at_most(snap, unit, drawn, MAX_AREA_UNITS)
    parts = [series(snap, pub, rules, unit, u, months, cursor) for u in units]
    return units, areas.summed(parts, len(months))


def area_breakdown(
    snap: Snapshot, pub: PublicView, rules: PublicRules, unit: Unit, units: list[str], cursor: Any
) -> dict[str, int]:
    """Published counts of every category and offense over whole units, by forest name.

    Names as the forest spells them (``c:<category>``, ``o:<offense>``); a name is left
    out where any of ``units`` has no published cell of it (withheld, or a zero), and
    sensitive ones where the unit is too fine for them.
    """
    table = tables.published_table(
        snap, tables.unit_family(unit), pub.period.year, rules, cursor, pub.published_until
    )
    tree = tables.forest(snap)
    fine = not coarse(rules, unit)
    res = (unit.res or 0) if unit.kind == "h3" else 0
    wanted = set(units)
    out: dict[str, int] = {}
    for node, name in enumerate(tree.names):
        if node == tree.index[ALL] or (fine and bool(tree.sensitive[node])):
            continue
        ids, values, _, _ = table.shown(pub.period.code, node, res)
        got = [int(v) for i, v in zip(ids, values, strict=True) if i in wanted]
        if wanted and len(got) == len(wanted):
            out[name] = sum(got)
    return out


# Units a public drawn area's answer may list (an h3:9 answer for a city-wide polygon
# would be tens of thousands).
MAX_TOUCHED = 5_000
# Units a public drawn area's series may add up (one lookup per unit and month).
MAX_AREA_UNITS = 400


def _selected(snap: Snapshot, unit: Unit, ids: list[str], flt: Filters) -> list[bool]:
    """Units whose representative point lies in the bbox and the ``within`` polygon.

    Public figures are whole units: a bbox or a polygon picks units, never points (a
    sliver of a unit would be a count of its own, unprotected).
    """
    if not ids:
        return []
    if unit.kind == "h3":
        lat, lon = cells_to_latlng(hex_to_cells(ids))
        points = shapely.points(lon, lat)
    else:
        assert unit.layer is not None
        index, _, surface = layer_shapes(snap, unit)
        points = surface[[index[i] for i in ids]]
    keep = np.ones(len(ids), dtype=bool)
    if flt.bbox is not None:
        b = flt.bbox
        keep &= shapely.intersects(points, shapely.box(b.minlon, b.minlat, b.maxlon, b.maxlat))
    if flt.within is not None:
        layer, ident = flt.within
        index, shapes, _ = layer_shapes(snap, Unit("layer", layer=layer))
        if ident not in index:
            return [False] * len(ids)
        keep &= shapely.intersects(points, shapes[index[ident]])
    return keep.tolist()


# The names the public may see, per snapshot, rules and publication day.
VISIBLE_NAMES = Kind("names the public may see", items=16)


def visible_names(snap: Snapshot, rules: PublicRules, cursor: Cursor) -> Names:
    """The offenses and categories the release publishes: all a public request may name.

    An offense the release withholds everywhere is unknown to the public, as one that
    never happened: its name alone would say that it did.
    """
    until = tables.cutoff(rules, today())

    def build() -> Names:
        offenses, categories = tables.published_names(snap, rules, cursor, until)
        return Names(frozenset(offenses), frozenset(categories))

    return snap.memo(VISIBLE_NAMES, (rules, until), build)


def whole_area_counts(
    snap: Snapshot, rules: PublicRules, cursor: Cursor, period: Period, until: date
) -> dict[str, int | None]:
    """The whole area's published count of every offense-tree node in a period, by name.

    Names as the offense forest spells them (``*``, ``c:<category>``, ``o:<offense>``);
    None where the release withholds the cell. These are cells /v1/aggregate publishes
    for the whole area already.
    """
    table = tables.published_table(snap, tables.TOTAL, period.year, rules, cursor, until, wait=True)
    names = tables.forest(snap).names
    return {name: table.value_of("", period.code, node) for node, name in enumerate(names)}
