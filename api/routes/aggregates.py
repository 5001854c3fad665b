"""Counts per unit: /v1/aggregate."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from enum import StrEnum
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import shapely
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import FiltersDep, ManifestDep, StoreDep
from geo.cells import cells_to_polygons, hex_to_cells
from store.aggregate import Unit, aggregate, unit_attributes
from store.filters import Filters

router = APIRouter(prefix="/v1", tags=["aggregates"])

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


class AggregateResponse(BaseModel):
    """Counts per unit, occupied units only, largest first."""

    model_config = ConfigDict(extra="forbid")
    snapshot: int = Field(description="Snapshot the figures come from.")
    unit: str = Field(description="The unit requested.")
    filters: dict[str, Any] = Field(description="The filters applied, echoed.")
    total: int = Field(description="Incidents matching the filters.")
    unassigned: int = Field(
        description="Of those, incidents in no unit (outside every polygon, or no street within 50 m)."
    )
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
        400: {"description": "A parameter names an unknown unit or layer, or an empty window."},
    },
)
def get_aggregate(
    request: Request,
    store: StoreDep,
    manifest: ManifestDep,
    filters: FiltersDep,
    unit: Annotated[
        str,
        Query(max_length=64, description=UNIT_DESCRIPTION, examples=["colonia", "h3:8", "street"]),
    ],
    format: Annotated[Format, Query(description="json, geojson or csv.")] = Format.json,
) -> Any:
    """One row per occupied unit with its count and, where known, its rate per 100k.

    Example: robberies of pedestrians with violence by colonia in 2023, at night —
    `/v1/aggregate?unit=colonia&start=2023-01-01&end=2024-01-01&offense=ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA&hour_from=22&hour_to=6`.
    """
    parsed = Unit.parse(unit, manifest)
    flt = filters.to_filters()
    cursor = request.app.state.duckdb.cursor()
    try:
        counts = aggregate(store, manifest, parsed, flt, cursor)
    finally:
        cursor.close()
    rows, geometries = _rows(
        store, manifest, parsed, counts.table, with_geometry=format is Format.geojson
    )
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
            "total": counts.total,
            "unassigned": counts.unassigned,
            "features": features,
        }
        return Response(json.dumps(body), media_type="application/geo+json", headers=headers)
    payload = AggregateResponse(
        snapshot=manifest.snapshot,
        unit=unit,
        filters=_echo(flt),
        total=counts.total,
        unassigned=counts.unassigned,
        rows=[AggregateRow(**r) for r in rows],
    )
    return JSONResponse(payload.model_dump(mode="json"), headers=headers)


def _echo(flt: Filters) -> dict[str, Any]:
    out = {k: v for k, v in asdict(flt).items() if v not in (None, ())}
    return json.loads(json.dumps(out, default=str))


def _rows(
    store: Any, manifest: Any, unit: Unit, table: pa.Table, with_geometry: bool
) -> tuple[list[dict[str, Any]], list[Any]]:
    ids = table.column("unit_id").to_pylist()
    counts = table.column("count").to_pylist()
    names: list[str | None] = [None] * len(ids)
    rates: list[float | None] = [None] * len(ids)
    geometries: list[Any] = [None] * len(ids)
    if unit.kind == "h3":
        if with_geometry and ids:
            polys = cells_to_polygons(hex_to_cells(ids))
            geometries = [json.loads(g) for g in shapely.to_geojson(polys)]
    else:
        attrs = unit_attributes(store, manifest, unit)
        index = {v: i for i, v in enumerate(attrs.column("unit_id").to_pylist())}
        pos = [index.get(i) for i in ids]
        attr_names = attrs.column("name").to_pylist()
        pops = attrs.column("population").to_pylist()
        names = [attr_names[p] if p is not None else None for p in pos]
        rates = [
            round(c / pops[p] * 100_000, 3) if p is not None and pops[p] else None
            for c, p in zip(counts, pos, strict=True)
        ]
        if with_geometry:
            wkb = np.asarray(attrs.column("geometry").to_pylist(), dtype=object)
            shapes = shapely.from_wkb(wkb)
            geometries = [
                json.loads(shapely.to_geojson(shapes[p])) if p is not None else None for p in pos
            ]
    rows = [
        {"unit_id": i, "name": n, "count": c, "rate_per_100k": r}
        for i, n, c, r in zip(ids, names, counts, rates, strict=True)
    ]
    return rows, geometries


def _csv(rows: list[dict[str, Any]], headers: dict[str, str]) -> Response:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["unit_id", "name", "count", "rate_per_100k"])
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _csv_safe(v) for k, v in r.items()})
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


def _csv_safe(value: Any) -> Any:
    # Spreadsheet formula injection: a cell starting with = + - @ is data, not a formula.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
