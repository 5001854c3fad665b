"""The weekly CompStat pack: a unit's week, 28 days and year to date against a year before.

Per offense category: counts now and a year before, the change and an exact Poisson p
(the counts' rates over the periods' days); the units inside that rose most over the 28
days (every other boundary layer: colonias, cuadrantes); the hot spots of the 28 days
(Gi* over the first boundary layer, those inside the unit); and a map of the 28 days. Or,
without an id, one row per unit of the whole layer. Built for keys only: a week and 28
days are not periods of the public release (docs/privacy.md).
"""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa
import shapely

from geo.hotspots import hot_spots
from geo.stats import poisson_rate_test
from store.aggregate import Unit, aggregate, layer_shapes, unit_names
from store.compstat import Window, period_counts, windows
from store.engine import Cursor
from store.filters import FilterError, Filters
from store.snapshot import Snapshot
from store.study_area import study_area

TOP = 10


def compstat_pack(
    snap: Snapshot,
    cursor: Cursor,
    flt: Filters,
    unit: Unit,
    ident: str | None,
    week: str,
    drawing: Any = None,
) -> dict[str, Any]:
    """The pack as plain data (JSON-ready, but for ``map_png``: PNG bytes or None).

    ``flt`` holds a key's source scope and an offense or category selection; its dates
    and places are the pack's own. ``drawing(bbox, highlight, flt)`` returns the map's PNG.
    """
    if unit.kind != "layer":
        raise FilterError("unit", unit.kind, "CompStat is by a boundary layer's units")
    assert unit.layer is not None
    names = unit_names(snap, unit)
    if ident is not None and ident not in names:
        raise FilterError("id", ident, f"no {unit.layer} with that id")
    wins = windows(week)
    spans = [w.current for w in wins] + [w.prior for w in wins]
    base = replace(flt, start=None, end=None, within=None, bbox=None, circle=None, shape=None)
    place = replace(base, within=(unit.layer, ident)) if ident is not None else base
    by_category = period_counts(snap, place, spans, "category", cursor)
    pack: dict[str, Any] = {
        "snapshot": snap.id,
        "unit": unit.layer,
        "id": ident,
        "name": names.get(ident) if ident is not None else None,
        "week": week,
        "windows": [
            {"name": w.name, "current": _span(w.current), "prior": _span(w.prior)} for w in wins
        ],
        "filters": _selection(flt),
        "categories": _rows(by_category, wins, "category"),
        "total": _rows(_summed(by_category), wins, "category")[0],
        "units": [],
        "rising": {},
        "hotspots": [],
    }
    pack["total"]["category"] = "*"
    if ident is None:
        by_unit = period_counts(snap, base, spans, unit.layer, cursor)
        pack["units"] = _named(_rows(by_unit, wins, "unit_id"), names)
    for layer in snap.boundary_layers:
        if layer != unit.layer:
            pack["rising"][layer] = _rising(snap, place, wins[1], layer, cursor)
    pack["hotspots"] = _hotspots(snap, base, place, wins[1], cursor)
    pack["map_png"] = None
    if drawing is not None:
        bbox = _bbox(snap, unit, ident)
        highlight = (unit.layer, ident) if ident is not None else None
        days = replace(base, start=wins[1].current[0], end=wins[1].current[1])
        pack["map_png"] = drawing(bbox, highlight, days)
    return pack


def map_data_uri(pack: dict[str, Any]) -> str | None:
    """The pack's map as a data URI (the printable page carries its own image)."""
    png = pack.get("map_png")
    return "data:image/png;base64," + base64.b64encode(png).decode() if png else None


def _selection(flt: Filters) -> dict[str, list[str]]:
    """The offense selection the pack counts (empty: every offense)."""
    chosen = (("categories", flt.categories), ("offenses", flt.offenses))
    return {name: list(values) for name, values in chosen if values}


def _span(span: tuple[Any, Any]) -> list[str]:
    return [span[0].isoformat(), span[1].isoformat()]


def _summed(table: pa.Table) -> pa.Table:
    """One row: every column's sum (the whole selection)."""
    cols = {c: [int(sum(table.column(c).to_pylist()))] for c in table.column_names if c != "key"}
    return pa.table({"key": ["*"], **cols})


def _stats(current: int, prior: int, days: int, prior_days: int) -> dict[str, Any]:
    """Now, a year before, the change and the exact Poisson p of equal daily rates."""
    p = float(poisson_rate_test(np.array([prior]), np.array([current]), prior_days, days)[0])
    return {
        "current": current,
        "prior": prior,
        "change": current - prior,
        "change_pct": round((current - prior) / prior * 100, 1) if prior else None,
        "p": p,
    }


def _rows(table: pa.Table, wins: list[Window], key: str) -> list[dict[str, Any]]:
    """One row per key with each window's stats.

    The table's columns n0 … n5 are the windows' current periods, then their prior ones.
    """
    k = len(wins)
    out = []
    for row in table.to_pylist():
        if row["key"] is None:
            continue
        entry: dict[str, Any] = {key: row["key"]}
        for i, w in enumerate(wins):
            entry[w.name] = _stats(row[f"n{i}"], row[f"n{i + k}"], w.days, w.prior_days)
        out.append(entry)
    out.sort(key=lambda r: (-r["ytd"]["current"], -r["28d"]["current"], str(r[key])))
    return out


def _named(rows: list[dict[str, Any]], names: dict[str, str | None]) -> list[dict[str, Any]]:
    return [{"unit_id": r["unit_id"], "name": names.get(r["unit_id"]), **r} for r in rows]


def _rising(
    snap: Snapshot, place: Filters, w: Window, layer: str, cursor: Cursor
) -> list[dict[str, Any]]:
    """The units of ``layer`` inside the place whose 28 days rose most on the year before."""
    table = period_counts(snap, place, [w.current, w.prior], layer, cursor)
    rows = []
    for row in table.to_pylist():
        if row["key"] is None or row["n0"] <= row["n1"]:
            continue
        rows.append({"unit_id": row["key"], **_stats(row["n0"], row["n1"], w.days, w.prior_days)})
    rows.sort(key=lambda r: (-r["change"], r["p"], r["unit_id"]))
    names = unit_names(snap, Unit("layer", layer=layer))
    return [{"name": names.get(r["unit_id"]), **r} for r in rows[:TOP]]


def _hotspots(
    snap: Snapshot, base: Filters, place: Filters, w: Window, cursor: Cursor
) -> list[dict[str, Any]]:
    """Gi* hot spots of the 28 days over the first boundary layer, those with records inside."""
    if not snap.boundary_layers:
        return []
    layer = snap.boundary_layers[0]
    unit = Unit("layer", layer=layer)
    period = replace(base, start=w.current[0], end=w.current[1])
    counts = aggregate(snap, unit, period, cursor)
    sa = study_area(snap, unit, None)
    ids = counts.table.column("unit_id").to_pylist()
    y, _ = sa.place(ids, counts.table.column("count").to_numpy())
    gi = hot_spots(y, sa.weights, sa.prepared, 0, 0)
    here = period_counts(snap, place, [w.current], layer, cursor).to_pylist()
    inside = {r["key"] for r in here if r["n0"]}
    names = unit_names(snap, unit)
    rows = []
    for i in np.argsort(-gi.z, kind="stable"):
        uid = sa.unit_ids[i]
        if str(gi.classes[i]).startswith("hot") and uid in inside:
            rows.append(
                {
                    "unit_id": uid,
                    "name": names.get(uid),
                    "count": int(y[i]),
                    "z": round(float(gi.z[i]), 3),
                    "p_fdr": float(gi.p_fdr[i]),
                    "class": str(gi.classes[i]),
                }
            )
    return rows[:TOP]


def _bbox(snap: Snapshot, unit: Unit, ident: str | None) -> tuple[float, float, float, float]:
    """The unit's bounds with a margin, or the whole layer's."""
    index, shapes, _ = layer_shapes(snap, unit)
    chosen = shapes[index[ident]] if ident is not None else shapes
    minx, miny, maxx, maxy = (float(v) for v in shapely.total_bounds(chosen))
    mx, my = (maxx - minx) * 0.08, (maxy - miny) * 0.08
    return (minx - mx, miny - my, maxx + mx, maxy + my)
