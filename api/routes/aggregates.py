"""Counts per unit: /v1/aggregate."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Principal, PrincipalDep
from api.deps import CursorDep, FiltersDep, ManifestDep, StoreDep
from api.errors import ERROR_RESPONSES
from api.privacy import Publication, period_groups, publication, suppress, unit_groups
from api.responses import csv_safe, json_response
from geo.cells import cells_to_polygons, hex_to_cells
from geo.stats import poisson_rate_test
from store.aggregate import Unit, aggregate, compare_periods, timeseries, unit_attributes
from store.filters import FilterError, Filters
from store.query import sensitive_offenses
from store.snapshots import Manifest

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
    rows: list[AggregateRow]


@router.get(
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
    request: Request,
    principal: PrincipalDep,
    cursor: CursorDep,
    store: StoreDep,
    manifest: ManifestDep,
    filters: FiltersDep,
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
    parsed = Unit.parse(unit, manifest)
    flt, pub = view(request, principal, manifest, filters.to_filters(), parsed)
    shown = published_counts(store, manifest, parsed, flt, pub, cursor)
    table, total, unassigned = shown.table, shown.total, shown.unassigned
    privacy = pub.describe(shown.withheld) if pub is not None else None
    rows, geometries = _rows(store, manifest, parsed, table, with_geometry=format is Format.geojson)
    headers = {"X-Cuadra-Snapshot": str(manifest.snapshot)}
    if format is Format.csv:
        return _csv(rows, headers)
    if format is Format.geojson:
        features = [
            {"type": "Feature", "id": r["unit_id"], "properties": r, "geometry": g}
            for r, g in zip(rows, geometries, strict=True)
        ]
        body = {
            "type": "FeatureCollection",
            "snapshot": manifest.snapshot,
            "unit": unit,
            "total": total,
            "unassigned": unassigned,
            "privacy": privacy,
            "features": features,
        }
        return json_response(body, headers, media_type="application/geo+json")
    # Built as plain data and encoded once: the schema is AggregateResponse's (tested by
    # the schema fuzz tests), without a model object per row on the hot path.
    payload = {
        "snapshot": manifest.snapshot,
        "unit": unit,
        "filters": _echo(flt),
        "total": total,
        "unassigned": unassigned,
        "privacy": privacy,
        "rows": rows,
    }
    return json_response(payload, headers)


def view(
    request: Request,
    principal: Principal,
    manifest: Manifest,
    flt: Filters,
    unit: Unit | None,
    monthly: bool = True,
) -> tuple[Filters, Publication | None]:
    """The filters a request is answered with: a key's source scope, or the public rules."""
    if principal.public:
        pub = _publication(request, manifest, flt, unit, monthly)
        return pub.filters, pub
    return (replace(flt, sources=principal.scopes) if principal.scopes else flt), None


def _publication(
    request: Request, manifest: Manifest, flt: Filters, unit: Unit | None, monthly: bool
) -> Publication:
    pairs = sensitive_offenses(request.app.state.store, manifest)
    return publication(flt, unit, request.app.state.rules, _today(), monthly, pairs)


def _today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True)
class Published:
    """Counts per unit as a role may see them: the withheld units left out."""

    table: pa.Table  # unit_id, count
    total: int | None  # None when withheld
    unassigned: int | None
    withheld: bool


def published_counts(
    store: Any,
    manifest: Manifest,
    unit: Unit,
    flt: Filters,
    pub: Publication | None,
    cursor: duckdb.DuckDBPyConnection,
) -> Published:
    """What /v1/aggregate shows of the counts per unit.

    All of them to a key; to the public, every count that the suppression rule and its
    complements leave. Tiles publish exactly these.
    """
    counts = aggregate(store, manifest, unit, flt, cursor)
    if pub is None:
        return Published(counts.table, counts.total, counts.unassigned, False)
    # Withheld first, so that names, rates and geometries are made for shown units only.
    table = counts.table
    ids = table.column("unit_id").to_pylist()
    values = [*table.column("count").to_pylist(), counts.unassigned]
    groups = unit_groups(unit, ids, _unit_count(manifest, unit), with_outside=True)
    hidden = suppress(values, pub.k, groups)
    return Published(
        table.filter(pa.array(~hidden[:-1])),
        None if counts.total < pub.k else counts.total,
        None if hidden[-1] else counts.unassigned,
        bool(hidden.any()),
    )


def _withhold(rows: list[dict[str, Any]], hidden: Any) -> list[dict[str, Any]]:
    """Drop the withheld rows: a withheld unit looks like a unit with no incident."""
    return [r for r, h in zip(rows, hidden, strict=True) if not h]


def _unit_count(manifest: Any, unit: Unit) -> int | None:
    """How many units a layer has (None for H3 cells: unbounded)."""
    if unit.kind == "h3" or unit.layer is None:
        return None
    return int(manifest.layers[unit.layer].features)


def _echo(flt: Filters) -> dict[str, Any]:
    out = {k: v for k, v in asdict(flt).items() if v not in (None, ())}
    return {
        k: str(v) if isinstance(v, date) else list(v) if isinstance(v, tuple) else v
        for k, v in out.items()
    }


def _rows(
    store: Any, manifest: Any, unit: Unit, table: pa.Table, with_geometry: bool
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
        attrs = unit_attributes(store, manifest, unit, geometry=with_geometry)
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
    rows: list[PeriodCount]


@router.get(
    "/timeseries",
    response_model=TimeseriesResponse,
    summary="Counts per day, week or month",
    responses={200: {"content": {"text/csv": {"description": "format=csv"}}}},
)
def get_timeseries(
    request: Request,
    principal: PrincipalDep,
    cursor: CursorDep,
    store: StoreDep,
    manifest: ManifestDep,
    filters: FiltersDep,
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
    parsed = Unit.parse(unit, manifest) if unit is not None else None
    if parsed is None and id is not None:
        raise FilterError("unit", None, "give unit together with id")
    flt, pub = view(
        request, principal, manifest, filters.to_filters(), parsed, interval is Interval.month
    )
    table = timeseries(store, manifest, interval.value, flt, parsed, id, cursor)
    periods = table.column("period").to_pylist()
    rows: list[dict[str, Any]] = [
        {"period": p.isoformat(), "count": c}
        for p, c in zip(periods, table.column("count").to_pylist(), strict=True)
    ]
    privacy = None
    if pub is not None:
        values = [r["count"] for r in rows]
        hidden = suppress(values, pub.k, period_groups(periods, interval.value))
        for r, h in zip(rows, hidden, strict=True):
            if h:
                r["count"] = None  # zeros too: a withheld period may hold anything below k
        privacy = pub.describe(bool(hidden.any()))
    headers = {"X-Cuadra-Snapshot": str(manifest.snapshot)}
    if format is TableFormat.csv:
        return _table_csv(["period", "count"], rows, headers)
    payload = {"snapshot": manifest.snapshot, "interval": interval.value, "unit": unit, "id": id,
               "filters": _echo(flt), "privacy": privacy, "rows": rows}  # fmt: skip
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
    rows: list[CompareRow]


@router.get(
    "/compare",
    response_model=CompareResponse,
    summary="Two periods compared per unit",
    responses={200: {"content": {"text/csv": {"description": "format=csv"}}}},
)
def get_compare(
    request: Request,
    principal: PrincipalDep,
    cursor: CursorDep,
    store: StoreDep,
    manifest: ManifestDep,
    filters: FiltersDep,
    unit: Annotated[
        str,
        Query(
            pattern=UNIT_PATTERN,
            max_length=64,
            description=UNIT_DESCRIPTION,
            examples=["cuadrante"],
        ),
    ],
    a_start: Annotated[
        date, Query(description="Period A start (inclusive).", examples=["2023-01-01"])
    ],
    a_end: Annotated[date, Query(description="Period A end (exclusive).", examples=["2024-01-01"])],
    b_start: Annotated[
        date, Query(description="Period B start (inclusive).", examples=["2024-01-01"])
    ],
    b_end: Annotated[date, Query(description="Period B end (exclusive).", examples=["2025-01-01"])],
    rank: Annotated[
        Rank,
        Query(
            description="Order rows by p-value (significance) or by absolute change (difference)."
        ),
    ] = Rank.significance,
    format: Annotated[TableFormat, Query(description="json or csv.")] = TableFormat.json,
) -> Any:
    """Counts in both periods, the change, and an exact Poisson test per unit.

    Example: which cuadrantes got significantly worse in 2024 than in 2023 —
    `/v1/compare?unit=cuadrante&a_start=2023-01-01&a_end=2024-01-01&b_start=2024-01-01&b_end=2025-01-01`
    then read the rows with `change > 0` and `p_value < 0.05`.
    """
    parsed = Unit.parse(unit, manifest)
    flt = filters.to_filters()
    pub = None
    if principal.public:
        # The periods take the place of start/end: they must end before the delay, and
        # they are the time grain (sensitive offenses only over whole months).
        whole = replace(flt, start=min(a_start, b_start), end=max(a_end, b_end))
        aligned = all(d.day == 1 for d in (a_start, a_end, b_start, b_end))
        pub = _publication(request, manifest, whole, parsed, aligned)
        if pub.published_until < max(a_end, b_end):
            late = "b_end" if b_end >= a_end else "a_end"
            raise FilterError(late, max(a_end, b_end).isoformat(),
                              f"public figures end before {pub.published_until.isoformat()}")  # fmt: skip
        flt = replace(pub.filters, start=None, end=None)
    elif principal.scopes:
        flt = replace(flt, sources=principal.scopes)
    table = compare_periods(
        store, manifest, parsed, flt, (a_start, a_end), (b_start, b_end), cursor
    )
    days_a = (a_end - a_start).days
    days_b = (b_end - b_start).days
    a = np.asarray(table.column("a").to_pylist(), dtype=np.int64)
    b = np.asarray(table.column("b").to_pylist(), dtype=np.int64)
    p = poisson_rate_test(a, b, days_a, days_b)
    base_rows, _ = _rows(
        store,
        manifest,
        parsed,
        pa.table({"unit_id": table.column("unit_id"), "count": table.column("b")}),
        False,
    )
    rows = []
    for r, ca, cb, pv in zip(base_rows, a.tolist(), b.tolist(), p.tolist(), strict=True):
        rows.append({
            "unit_id": r["unit_id"], "name": r["name"], "count_a": ca, "count_b": cb,
            "change": cb - ca,
            "change_pct": round((cb - ca) / ca * 100, 3) if ca else None,
            "rate_ratio": round((cb / days_b) / (ca / days_a), 6) if ca else None,
            "p_value": pv,
        })  # fmt: skip
    if rank is Rank.significance:
        rows.sort(key=lambda r: (r["p_value"], -abs(r["change"]), r["unit_id"]))
    else:
        rows.sort(key=lambda r: (-abs(r["change"]), r["p_value"], r["unit_id"]))
    privacy = None
    if pub is not None:
        # Each period's counts are cells of their own; a unit is left out if either is
        # withheld (its change and p-value would give the withheld count back).
        units = _unit_count(manifest, parsed)
        groups = unit_groups(parsed, [r["unit_id"] for r in rows], units, with_outside=False)
        hidden = suppress([r["count_a"] for r in rows], pub.k, groups)
        hidden |= suppress([r["count_b"] for r in rows], pub.k, groups)
        rows = _withhold(rows, hidden)
        privacy = pub.describe(bool(hidden.any()))
    headers = {"X-Cuadra-Snapshot": str(manifest.snapshot)}
    if format is TableFormat.csv:
        return _table_csv(list(CompareRow.model_fields), rows, headers)
    payload = CompareResponse(
        snapshot=manifest.snapshot, unit=unit, a=[a_start.isoformat(), a_end.isoformat()],
        b=[b_start.isoformat(), b_end.isoformat()], rank=rank, filters=_echo(flt),
        privacy=privacy, rows=[CompareRow(**r) for r in rows],
    )  # fmt: skip
    return JSONResponse(payload.model_dump(mode="json"), headers=headers)


def _table_csv(fields: list[str], rows: list[dict[str, Any]], headers: dict[str, str]) -> Response:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: csv_safe(v) for k, v in r.items()})
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
