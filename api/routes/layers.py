"""Boundary layer outlines: /v1/layers/{name}, the polygons without any count."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated

import orjson
import shapely
from fastapi import APIRouter, Path
from fastapi.responses import Response

from api.deps import SnapshotDep
from api.errors import ERROR_RESPONSES
from store.filters import FilterError
from store.layers import read_layer_columns
from store.snapshot import Kind

router = APIRouter(prefix="/v1", tags=["meta"], responses=ERROR_RESPONSES)
SIMPLIFY = 2e-5  # degrees, about 2 m: outlines for a map, not for measuring
OUTLINES = Kind("layer outlines", items=8)  # encoded GeoJSON, a few MB each


def _outlines(path: FilePath) -> bytes:
    table = read_layer_columns(path, ("id", "name", "population", "geometry"))
    geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    shapes = shapely.to_geojson(shapely.simplify(geoms, SIMPLIFY, preserve_topology=True))
    features = [
        {
            "type": "Feature",
            "id": str(i),
            "properties": {"unit_id": str(i), "name": n, "population": p},
            "geometry": orjson.Fragment(g),
        }
        for i, n, p, g in zip(
            table.column("id").to_pylist(),
            table.column("name").to_pylist(),
            table.column("population").to_pylist(),
            shapes,
            strict=True,
        )
    ]
    return orjson.dumps({"type": "FeatureCollection", "features": features})


@router.get(
    "/layers/{name}",
    summary="Outlines of a boundary layer as GeoJSON (ids, names, population; no counts)",
    response_class=Response,
    responses={200: {"content": {"application/geo+json": {}}}},
)
def get_layer(
    snap: SnapshotDep,
    name: Annotated[
        str,
        Path(
            pattern=r"^[a-z][a-z0-9_]*$",
            max_length=64,
            description="A boundary layer, e.g. `colonia`.",
        ),
    ],
) -> Response:
    """Every polygon of the layer, simplified to about 2 m, for drawing outlines.

    Public: the layers are published boundaries, not incident data. Example: `/v1/layers/cuadrante`.
    """
    if name not in snap.boundary_layers:
        raise FilterError(
            "name",
            name,
            f"no boundary layer of that name (have: {', '.join(snap.boundary_layers) or 'none'})",
        )
    path = snap.path(snap.layer(name).path)
    body = snap.memo(OUTLINES, name, lambda: _outlines(path))
    return Response(
        body,
        media_type="application/geo+json",
        headers={"Cache-Control": "public, max-age=3600", "X-Cuadra-Snapshot": str(snap.id)},
    )
