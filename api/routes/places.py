"""Find a place by name: /v1/places, over the names of the store's own units (no geocoder)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import SnapshotDep
from api.errors import ERROR_RESPONSES
from api.responses import json_response
from store.filters import FilterError
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
