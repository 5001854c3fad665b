"""Counts per unit: /v1/aggregate."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from api.areas import area_route
from api.context import Ask, AskDep
from api.deps import query_group
from api.errors import ERROR_RESPONSES
from api.responses import csv_safe, json_response
from disclosure.rules import NotPublished
from geo.cells import cells_to_polygons, hex_to_cells
from geo.stats import poisson_rate_test
from publication.areas import basis, covered
from publication.figures import (
    PublicView,
    Published,
    area_series,
    public_view,
    published_counts,
    series,
    today,
)
from publication.tables import Period, cutoff
from publication.tables import default_period as release_default
from store.aggregate import Unit, compare_periods, timeseries, unit_attributes
from store.filters import FilterError, Filters
from store.snapshot import Snapshot

router = APIRouter(prefix="/v1", tags=["aggregates"], responses=ERROR_RESPONSES)

UNIT_PATTERN = r"^(h3:([5-9]|1[0-2])|[a-z][a-z0-9_]*)$"
UNIT_DESCRIPTION = (
    "Spatial unit: `h3:5` … `h3:12` (hexagons; each level is the exact sum of its children), "
    "a boundary layer name (`colonia`, `alcaldia`, `cuadrante`, … see /v1/meta), or `street`."
)


class Format(StrEnum):
    """Response formats."""

    json = "json"
    geojson = "geojson"
    csv = "csv"


class AggregateRow(BaseModel):
    """Counts of one unit."""

    model_config = ConfigDict(extra="forbid")
    unit_id: str = Field(description="H3 cell (hex), polygon id or street segment id.")
    name: str | None = Field(description="Display name where the layer has one.")
    count: int = Field(description="Incidents in the unit under the filters.")
    rate_per_100k: float | None = Field(
        description="count per 100,000 inhabitants, where the layer has population."
    )


class PrivacyBlock(BaseModel):
    """How a public response was protected (docs/privacy.md); null for API keys."""

    model_config = ConfigDict(extra="forbid")
    k: int = Field(description="Counts below k are withheld (units left out, periods null).")
    withheld: bool = Field(
        description="Some counts were withheld (below k, or complements that keep them unrecoverable)."
    )
    sensitive_excluded: bool = Field(
        description="Sensitive offenses were left out (fine unit or fine time)."
    )
    published_until: str = Field(description="The first day not published (delay).")


class AreaBlock(BaseModel):
    """A public answer for a drawn area: the whole units whose published cells answer it."""

    model_config = ConfigDict(extra="forbid")
    unit: str = Field(description="The kind of unit.")
    units: list[str] = Field(
        description="Every unit the drawn area touches. The public's figures are these "
        "units' published cells (a unit without a row is a zero or withheld); an API key "
        "gets the records inside the area itself."
    )
    published: int | None = Field(
        default=None, description="/v1/area: how many of `units` have a published figure."
    )
    published_total: int | None = Field(
        default=None,
        description="/v1/area: the sum of those figures (a floor of the units' total when "
        "some are not published).",
    )


class AggregateResponse(BaseModel):
    """Counts per unit, occupied units only, largest first."""

    model_config = ConfigDict(extra="forbid")
    snapshot: int = Field(description="Snapshot the figures come from.")
    unit: str = Field(description="The unit requested.")
    filters: dict[str, Any] = Field(description="The filters applied, echoed.")
    total: int | None = Field(description="Incidents matching the filters; null if suppressed.")
    unassigned: int | None = Field(
        description="Of those, incidents in no unit (outside every polygon, or no street within 50 m); null if suppressed."
    )
    privacy: PrivacyBlock | None = Field(description="Public responses: the rules applied.")
    area: AreaBlock | None = Field(
        default=None, description="Public answers for a drawn area: the units answering it."
    )
    rows: list[AggregateRow]


@area_route(
    router,
    "/aggregate",
    response_model=AggregateResponse,
    summary="Counts per unit",
    responses={
        200: {
            "content": {
                "application/geo+json": {"description": "format=geojson: a FeatureCollection"},
                "text/csv": {"description": "format=csv"},
            }
        },
    },
)
def get_aggregate(
    ask: AskDep,
    unit: Annotated[
        str,
        Query(
            pattern=UNIT_PATTERN,
            max_length=64,
            description=UNIT_DESCRIPTION,
            examples=["colonia", "h3:8", "street"],
        ),
    ],
    format: Annotated[Format, Query(description="json, geojson or csv.")] = Format.json,
) -> Any:
    """One row per occupied unit with its count and, where known, its rate per 100k.

    Example: robberies of pedestrians with violence by colonia in 2023, at night —
    `/v1/aggregate?unit=colonia&start=2023-01-01&end=2024-01-01&offense=ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA&hour_from=22&hour_to=6`.
    """
    parsed = ask.unit(unit)
    flt, pub = ask.answering(parsed, drawn=True)
    shown = published_counts(ask.snap, parsed, flt, pub, ask.rules, ask.cursor)
    area = (
        {"area": {"unit": unit, "units": shown.area_units}} if shown.area_units is not None else {}
    )
    table, total, unassigned = shown.table, shown.total, shown.unassigned
    privacy = pub.describe(shown.withheld) if pub is not None else None
    rows, geometries = _rows(ask.snap, parsed, table, with_geometry=format is Format.geojson)
    headers = ask.headers
    if format is Format.csv:
        return _csv(rows, headers)
    if format is Format.geojson:
        features = [
            {"type": "Feature", "id": r["unit_id"], "properties": r, "geometry": g}
            for r, g in zip(rows, geometries, strict=True)
        ]
        body = {
            "type": "FeatureCollection",
            "snapshot": ask.snap.id,
            "unit": unit,
            "total": total,
            "unassigned": unassigned,
            "privacy": privacy,
            **area,
            "features": features,
        }
        return json_response(body, headers, media_type="application/geo+json")
    # Built as plain data and encoded once: the schema is AggregateResponse's (tested by
    # the schema fuzz tests), without a model object per row on the hot path.
    payload = {
        "snapshot": ask.snap.id,
        "unit": unit,
        "filters": ask.echo(flt),
        "total": total,
        "unassigned": unassigned,
        "privacy": privacy,
        **area,
        "rows": rows,
    }
    return json_response(payload, headers)


def _public_months(
    request: Request, snap: Snapshot, flt: Filters, unit: Unit | None, interval: Interval
) -> tuple[Filters, PublicView, list[date]]:
    """A public series: whole months, each a cell of the release, up to the delay."""
    if interval is not Interval.month:
        raise FilterError(
            "interval", interval.value, "public series are monthly; an API key opens days and weeks"
        )
    for name, day in (("start", flt.start), ("end", flt.end)):
        if day is not None and day.day != 1:
            raise FilterError(
                name, day.isoformat(), "public series run over whole months: give the 1st"
            )
    rules = request.app.state.rules
    until = cutoff(rules, today())
    default = release_default(snap.manifest, until)
    first = flt.start or default.start
    if flt.end is not None and flt.end <= first:
        raise FilterError("end", flt.end.isoformat(), f"must be after start {first}")
    if first >= until:
        raise FilterError("start", first.isoformat(), f"public figures end before {until}")
    whole = replace(flt, start=None, end=None)
    probe = public_view(snap, rules, whole, unit, Period.month(first), drawn=True)
    last = min(flt.end or (default.end if flt.start is None else until), until)
    months = []
    day = first
    while day < last:
        months.append(day)
        day = Period.month(day).end
    if len(months) > MAX_PUBLIC_MONTHS:
        raise FilterError(
            "start", first.isoformat(), f"at most {MAX_PUBLIC_MONTHS} months per public series"
        )
    shown = replace(probe.filters, start=first, end=last)
    return shown, replace(probe, filters=shown), months


MAX_PUBLIC_MONTHS = 240


def _rows(
    snap: Snapshot, unit: Unit, table: pa.Table, with_geometry: bool
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Rows with name and rate per 100k, joined by column (no Python loop over rows)."""
    ids = table.column("unit_id")
    counts = table.column("count")
    n = table.num_rows
    names: pa.Array | pa.ChunkedArray = pa.nulls(n, pa.string())
    rates: pa.Array | pa.ChunkedArray = pa.nulls(n, pa.float64())
    geometries: list[Any] = [None] * n
    if unit.kind == "h3":
        if with_geometry and n:
            polys = cells_to_polygons(hex_to_cells(ids.to_pylist()))
            geometries = [json.loads(g) for g in shapely.to_geojson(polys)]
    else:
        attrs = unit_attributes(snap, unit, geometry=with_geometry)
        pos = pc.index_in(ids, value_set=attrs.column("unit_id"))
        names = attrs.column("name").take(pos)
        population = attrs.column("population").take(pos)
        # No rate where the population is unknown or zero.
        known = pc.and_kleene(pc.is_valid(population), pc.greater(population, 0))
        per = pc.divide(pc.multiply(pc.cast(counts, pa.float64()), 100_000.0), population)
        rates = pc.if_else(known, pc.round(per, 3), pa.scalar(None, pa.float64()))
        if with_geometry:
            shapes = attrs.column("geometry").take(pos).to_pylist()
            geometries = [
                json.loads(shapely.to_geojson(shapely.from_wkb(g))) if g is not None else None
                for g in shapes
            ]
    rows = pa.table(
        {"unit_id": ids, "name": names, "count": counts, "rate_per_100k": rates}
    ).to_pylist()
    return rows, geometries


def top_rows(ask: Ask, unit: Unit, n: int) -> list[dict[str, Any]]:
    """The ``n`` busiest units as the request may see them: unit_id, name, count.

    Drawn areas as /v1/aggregate answers them (the public: the whole units touched).
    """
    flt, pub = ask.answering(unit, drawn=True)
    shown = published_counts(ask.snap, unit, flt, pub, ask.rules, ask.cursor)
    return named_rows(ask.snap, unit, shown.table.slice(0, n))


def named_rows(snap: Snapshot, unit: Unit, table: pa.Table) -> list[dict[str, Any]]:
    """unit_id, name and count of each row of a (unit_id, count) table, in its order."""
    rows, _ = _rows(snap, unit, table, False)
    return [{"unit_id": r["unit_id"], "name": r["name"], "count": r["count"]} for r in rows]


def _public_place(
    ask: Ask, flt: Filters, unit: Unit | None, ident: str | None
) -> tuple[Unit | None, str | None]:
    """The unit a public series is of: ``unit`` and ``id``, or ``within=layer:id``.

    The release publishes series of whole units: a bbox would be a new area of its own.
    """
    if ident is None and flt.within is not None:
        layer, within_id = flt.within
        return ask.unit(layer), within_id
    if flt.bbox is not None:
        raise FilterError(
            "bbox",
            flt.bbox,
            "public series are of one unit (unit and id, or within=layer:id) or a drawn "
            "area (within=circle:... or a posted polygon); an API key opens boxes",
        )
    return unit, ident


def _unit_text(unit: Unit) -> str:
    """A unit as the ``unit`` parameter spells it."""
    if unit.kind == "h3":
        return f"h3:{unit.res}"
    return "street" if unit.kind == "street" else str(unit.layer)


def _csv(rows: list[dict[str, Any]], headers: dict[str, str]) -> Response:
    return _table_csv(["unit_id", "name", "count", "rate_per_100k"], rows, headers)


class TableFormat(StrEnum):
    """Formats of tabular responses."""

    json = "json"
    csv = "csv"


class Interval(StrEnum):
    """Time series intervals."""

    day = "day"
    week = "week"
    month = "month"


class PeriodCount(BaseModel):
    """Incidents in one interval."""

    model_config = ConfigDict(extra="forbid")
    period: str = Field(description="First local date of the interval (weeks start on Monday).")
    count: int | None = Field(description="Incidents; null where withheld (public, below k).")


class TimeseriesResponse(BaseModel):
    """Counts per interval, zeros included."""

    model_config = ConfigDict(extra="forbid")
    snapshot: int
    interval: Interval
    unit: str | None
    id: str | None
    filters: dict[str, Any]
    privacy: PrivacyBlock | None
    partial: list[date] = Field(
        description="Periods the window or the data cover only in part (their counts are "
        "of those days only): a week or month cut by the start, the end or the last record."
    )
    area: AreaBlock | None = Field(
        default=None,
        description="Public answers for a drawn area: the units whose published series add "
        "up to it (`unit` picks their kind; default the first boundary layer).",
    )
    rows: list[PeriodCount]


@area_route(
    router,
    "/timeseries",
    response_model=TimeseriesResponse,
    summary="Counts per day, week or month",
    responses={200: {"content": {"text/csv": {"description": "format=csv"}}}},
)
def get_timeseries(
    ask: AskDep,
    interval: Annotated[
        Interval, Query(description="day, week (ISO, from Monday) or month.")
    ] = Interval.month,
    unit: Annotated[
        str | None,
        Query(
            pattern=UNIT_PATTERN,
            max_length=64,
            description="With id: one unit's series. " + UNIT_DESCRIPTION,
        ),
    ] = None,
    id: Annotated[
        str | None,
        Query(
            max_length=100,
            description="The unit's id (H3 hex, polygon id, street id).",
            examples=["15-017"],
        ),
    ] = None,
    format: Annotated[TableFormat, Query(description="json or csv.")] = TableFormat.json,
) -> Any:
    """Counts per interval for the whole selection, or for one unit with `unit` and `id`.

    Example: monthly counts of one colonia in 2023 —
    `/v1/timeseries?unit=colonia&id=15-017&interval=month&start=2023-01-01&end=2024-01-01`.
    """
    parsed = ask.unit(unit) if unit is not None else None
    if parsed is None and id is not None:
        raise FilterError("unit", None, "give unit together with id")
    rows: list[dict[str, Any]]
    partial: list[str] = []  # public series are whole published months
    area: dict[str, Any] = {}
    if ask.principal.public:
        flt, pub, months = _public_months(ask.request, ask.snap, ask.filters(), parsed, interval)
        parsed, id = _public_place(ask, flt, parsed, id)
        if flt.drawn() is None:
            counts = series(ask.snap, pub, ask.rules, parsed, id, months, ask.cursor)
        else:
            if id is not None:
                raise FilterError("id", id, "give one place: a unit's id or a drawn area")
            by = basis(ask.snap, ask.rules.finest_h3, parsed)
            units, counts = area_series(ask.snap, pub, ask.rules, by, months, ask.cursor)
            area = {"area": {"unit": _unit_text(by), "units": units}}
        # Withheld months are null, zeros too: a withheld month may hold anything below k.
        rows = [{"period": m.isoformat(), "count": c} for m, c in zip(months, counts, strict=True)]
        privacy = pub.describe(any(c is None for c in counts))
    else:
        flt, _ = ask.answering(parsed)
        table = timeseries(ask.snap, interval.value, flt, parsed, id, ask.cursor)
        periods = table.column("period").to_pylist()
        rows = [
            {"period": p.isoformat(), "count": c}
            for p, c in zip(periods, table.column("count").to_pylist(), strict=True)
        ]
        cut = table.column("partial").to_pylist()
        partial = [p.isoformat() for p, c in zip(periods, cut, strict=True) if c]
        privacy = None
    headers = ask.headers
    if format is TableFormat.csv:
        return _table_csv(["period", "count"], rows, headers)
    payload = {
        "snapshot": ask.snap.id,
        "interval": interval.value,
        "unit": unit,
        "id": id,
        "filters": ask.echo(flt),
        "privacy": privacy,
        "partial": partial,
        **area,
        "rows": rows,
    }
    return json_response(payload, headers)


class Rank(StrEnum):
    """Orderings of a comparison."""

    significance = "significance"
    difference = "difference"


class CompareRow(BaseModel):
    """One unit in two periods."""

    model_config = ConfigDict(extra="forbid")
    unit_id: str
    name: str | None
    count_a: int
    count_b: int
    change: int = Field(description="count_b − count_a.")
    change_pct: float | None = Field(description="Relative change in %, null when count_a is 0.")
    rate_ratio: float | None = Field(
        description="(count_b / days_b) / (count_a / days_a); null when count_a is 0."
    )
    p_value: float = Field(
        description="Exact Poisson test (conditional binomial) that both periods share one daily rate; two-sided."
    )


class CompareResponse(BaseModel):
    """Per unit: both counts, change, and whether the change is more than noise."""

    model_config = ConfigDict(extra="forbid")
    snapshot: int
    unit: str
    a: list[str] = Field(description="Period A: start (inclusive), end (exclusive).")
    b: list[str] = Field(description="Period B: start (inclusive), end (exclusive).")
    rank: Rank
    filters: dict[str, Any]
    privacy: PrivacyBlock | None
    area: AreaBlock | None = Field(
        default=None, description="Public answers for a drawn area: the units answering it."
    )
    rows: list[CompareRow]


@dataclass
class ComparePeriods:
    """The parameters of /v1/compare besides the common filters."""

    unit: Annotated[
        str,
        Query(
            pattern=UNIT_PATTERN,
            max_length=64,
            description=UNIT_DESCRIPTION,
            examples=["cuadrante"],
        ),
    ]
    a_start: Annotated[
        date, Query(description="Period A start (inclusive).", examples=["2023-01-01"])
    ]
    a_end: Annotated[date, Query(description="Period A end (exclusive).", examples=["2024-01-01"])]
    b_start: Annotated[
        date, Query(description="Period B start (inclusive).", examples=["2024-01-01"])
    ]
    b_end: Annotated[date, Query(description="Period B end (exclusive).", examples=["2025-01-01"])]
    rank: Annotated[
        Rank,
        Query(
            description="Order rows by p-value (significance) or by absolute change (difference)."
        ),
    ] = Rank.significance
    format: Annotated[TableFormat, Query(description="json or csv.")] = TableFormat.json

    @property
    def a(self) -> tuple[date, date]:
        """Period A, [start, end)."""
        return self.a_start, self.a_end

    @property
    def b(self) -> tuple[date, date]:
        """Period B, [start, end)."""
        return self.b_start, self.b_end


ComparePeriodsDep = Annotated[ComparePeriods, Depends(query_group(ComparePeriods))]


@area_route(
    router,
    "/compare",
    response_model=CompareResponse,
    summary="Two periods compared per unit",
    responses={200: {"content": {"text/csv": {"description": "format=csv"}}}},
)
def get_compare(ask: AskDep, params: ComparePeriodsDep) -> Any:
    """Counts in both periods, the change, and an exact Poisson test per unit.

    Example: which cuadrantes got significantly worse in 2024 than in 2023 —
    `/v1/compare?unit=cuadrante&a_start=2023-01-01&a_end=2024-01-01&b_start=2024-01-01&b_end=2025-01-01`
    then read the rows with `change > 0` and `p_value < 0.05`.
    """
    unit = ask.unit(params.unit)
    table, flt, privacy = _compared(ask, unit, params)
    rows = _compare_rows(ask, unit, table, params)
    if params.format is TableFormat.csv:
        return _table_csv(list(CompareRow.model_fields), rows, ask.headers)
    drawn = flt.drawn() if ask.principal.public else None
    area = (
        {}
        if drawn is None
        else {"area": AreaBlock(unit=params.unit, units=covered(ask.snap, unit, drawn))}
    )
    payload = CompareResponse(
        **area,
        snapshot=ask.snap.id,
        unit=params.unit,
        a=[d.isoformat() for d in params.a],
        b=[d.isoformat() for d in params.b],
        rank=params.rank,
        filters=ask.echo(flt),
        privacy=privacy,
        rows=[CompareRow(**r) for r in rows],
    )
    return JSONResponse(payload.model_dump(mode="json", exclude_unset=True), headers=ask.headers)


def _compared(
    ask: Ask, unit: Unit, params: ComparePeriods
) -> tuple[pa.Table, Filters, dict[str, Any] | None]:
    """Counts per unit in both periods (unit_id, a, b), the filters, and the privacy block.

    A key counts its records; the public gets the units published in both periods, each
    period one of the release (a calendar year, quarter or month).
    """
    flt = ask.filters()
    if not ask.principal.public:
        if ask.principal.scopes:
            flt = replace(flt, sources=ask.principal.scopes)
        table = compare_periods(ask.snap, unit, flt, params.a, params.b, ask.cursor)
        return table, flt, None
    periods = []
    for name, (lo, hi) in (("a_end", params.a), ("b_end", params.b)):
        try:
            periods.append(Period.parse(lo, hi))
        except NotPublished as err:
            raise FilterError(name, hi.isoformat(), err.message) from None
    whole = replace(flt, start=None, end=None)
    views = [public_view(ask.snap, ask.rules, whole, unit, period, True) for period in periods]
    flt = replace(views[0].filters, start=None, end=None)
    shown = [published_counts(ask.snap, unit, flt, v, ask.rules, ask.cursor) for v in views]
    withheld = shown[0].withheld or shown[1].withheld
    return _both(shown[0], shown[1]), flt, views[1].describe(withheld)


def _compare_rows(
    ask: Ask, unit: Unit, table: pa.Table, params: ComparePeriods
) -> list[dict[str, Any]]:
    """One row per unit: both counts, the change, the rate ratio and the Poisson p-value."""
    days_a = (params.a[1] - params.a[0]).days
    days_b = (params.b[1] - params.b[0]).days
    a = np.asarray(table.column("a").to_pylist(), dtype=np.int64)
    b = np.asarray(table.column("b").to_pylist(), dtype=np.int64)
    p = poisson_rate_test(a, b, days_a, days_b)
    named = pa.table({"unit_id": table.column("unit_id"), "count": table.column("b")})
    base_rows, _ = _rows(ask.snap, unit, named, False)
    rows = [
        {
            "unit_id": r["unit_id"],
            "name": r["name"],
            "count_a": ca,
            "count_b": cb,
            "change": cb - ca,
            "change_pct": round((cb - ca) / ca * 100, 3) if ca else None,
            "rate_ratio": round((cb / days_b) / (ca / days_a), 6) if ca else None,
            "p_value": pv,
        }
        for r, ca, cb, pv in zip(base_rows, a.tolist(), b.tolist(), p.tolist(), strict=True)
    ]
    if params.rank is Rank.significance:
        rows.sort(key=lambda r: (r["p_value"], -abs(r["change"]), r["unit_id"]))
    else:
        rows.sort(key=lambda r: (-abs(r["change"]), r["p_value"], r["unit_id"]))
    return rows


def _both(a: Published, b: Published) -> pa.Table:
    """Units published in both periods.

    A unit withheld in either is left out: its change and p-value would give the withheld
    count back.
    """
    counts_a = dict(
        zip(a.table.column("unit_id").to_pylist(), a.table.column("count").to_pylist(), strict=True)
    )
    ids, ca, cb = [], [], []
    for uid, count in zip(
        b.table.column("unit_id").to_pylist(), b.table.column("count").to_pylist(), strict=True
    ):
        if uid in counts_a:
            ids.append(uid)
            ca.append(counts_a[uid])
            cb.append(count)
    return pa.table(
        {
            "unit_id": pa.array(ids, pa.string()),
            "a": pa.array(ca, pa.int64()),
            "b": pa.array(cb, pa.int64()),
        }
    )


def _table_csv(fields: list[str], rows: list[dict[str, Any]], headers: dict[str, str]) -> Response:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: csv_safe(v) for k, v in r.items()})
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
