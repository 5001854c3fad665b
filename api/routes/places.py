"""Find a place by name: /v1/places, over the names of the store's own units (no geocoder)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.context import Ask, AskDep
from api.deps import SnapshotDep
from api.errors import ERROR_RESPONSES
from api.responses import json_response
from publication.figures import published_counts
from store.aggregate import Unit, unit_names
from store.filters import FilterError
from store.locate import locate
from store.places import place_index

router = APIRouter(prefix="/v1", tags=["places"], responses=ERROR_RESPONSES)


class PlaceHit(BaseModel):
    """A unit (or a street, all its segments) whose name matches."""

    model_config = ConfigDict(extra="forbid")
    layer: str = Field(description="The layer: colonia, alcaldia, cuadrante, the street layer, ...")
    kind: str = Field(description="`boundary` or `street`.")
    ids: list[str] = Field(description="The unit's id (a street: its segments' street_id).")
    name: str
    score: float = Field(description="0-100; accent-, case- and typo-tolerant.")
    bbox: list[float] = Field(description="west, south, east, north (WGS84).")
    centroid: list[float] = Field(description="lon, lat of a point inside.")


class PlacesResponse(BaseModel):
    """The best matches, highest score first."""

    model_config = ConfigDict(extra="forbid")
    snapshot: int
    query: str
    hits: list[PlaceHit]


@router.get("/places", response_model=PlacesResponse, summary="Find a place by name (offline)")
def get_places(
    snap: SnapshotDep,
    q: Annotated[
        str,
        Query(min_length=1, max_length=100, description="What to look for.", examples=["roma nte"]),
    ],
    limit: Annotated[int, Query(ge=1, le=50, description="Hits at most.")] = 10,
    layer: Annotated[
        str | None, Query(max_length=64, description="Only this layer's units (e.g. colonia).")
    ] = None,
) -> Any:
    """Units of the store's layers whose name matches `q`.

    Colonias, alcaldías, cuadrantes, streets (one hit per street, all its segments) and any
    layer with names.     Accents, case and small typos do not matter: `roma nte` finds ROMA NORTE I–III,
    `doctores` DOCTORES I–V. Each hit has its bbox and a point inside, for a map to go to.
    Names and outlines are public (as `/v1/layers`): no count is given.
    """
    known = [
        *snap.boundary_layers,
        *([snap.manifest.street_layer] if snap.manifest.street_layer else []),
    ]
    if layer is not None and layer not in known:
        raise FilterError(
            "layer", layer, f"unknown layer; use one of: {', '.join(known) or 'none'}"
        )
    hits = place_index(snap).search(q, limit, layer)
    body = {
        "snapshot": snap.id,
        "query": q,
        "hits": [
            {
                "layer": p.layer,
                "kind": p.kind,
                "ids": list(p.ids),
                "name": p.name,
                "score": round(score, 1),
                "bbox": list(p.bbox),
                "centroid": list(p.centroid),
            }
            for p, score in hits
        ],
    }
    return json_response(body, {"X-Cuadra-Snapshot": str(snap.id)})


@router.get("/locate", summary="What is here: every unit holding a point, with its figures")
def get_locate(
    ask: AskDep,
    lon: Annotated[
        float, Query(ge=-180, le=180, description="Longitude (WGS84).", examples=[-99.1332])
    ],
    lat: Annotated[
        float, Query(ge=-90, le=90, description="Latitude (WGS84).", examples=[19.4326])
    ],
) -> Any:
    """Every unit holding a point, with its name and count for the filters.

    Each boundary layer's unit holding the point, the nearest street segment (within the
    ingest's 50 m), and its H3 cells `h3:5` to `h3:12`; with each, its name and the count
    for the filters, as `/v1/aggregate` gives it to this requester (public: the release's
    cell, null where withheld or not published at that unit, with the reason).

    Example: which colonia, cuadrante and street is the Zócalo in, and how many robberies
    there in 2023 — `/v1/locate?lon=-99.1332&lat=19.4326&start=2023-01-01&end=2024-01-01`.
    """
    rows = [_figure(ask, unit, ident) for unit, ident in locate(ask.snap, lon, lat)]
    body = {"snapshot": ask.snap.id, "lon": lon, "lat": lat, "units": rows}
    return json_response(body, ask.headers)


def _figure(ask: Ask, unit: Unit, ident: str | None) -> dict[str, Any]:
    label = (
        f"h3:{unit.res}"
        if unit.kind == "h3"
        else ("street" if unit.kind == "street" else unit.layer)
    )
    row: dict[str, Any] = {"unit": label, "id": ident, "name": None, "count": None, "note": None}
    if ident is None:
        row["note"] = "outside every unit" if unit.kind != "street" else "no street within 50 m"
        return row
    if unit.kind != "h3":
        row["name"] = unit_names(ask.snap, unit).get(ident)
    try:
        flt, pub = ask.answering(unit)
    except FilterError as exc:  # e.g. h3:10 for the public
        row["note"] = exc.message
        return row
    shown = published_counts(ask.snap, unit, flt, pub, ask.rules, ask.cursor)
    ids = shown.table.column("unit_id").to_pylist()
    if ident in ids:
        row["count"] = int(shown.table.column("count")[ids.index(ident)].as_py())
    else:
        row["count"] = 0 if pub is None else None
        row["note"] = None if pub is None else "withheld or nothing published here"
    return row
