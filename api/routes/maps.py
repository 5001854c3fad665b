"""A server-side map image: /v1/maps/static.png (heatmap and boundaries of a box)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import numpy as np
import shapely
from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.context import Ask, AskDep
from api.errors import ERROR_RESPONSES
from api.routes.tiles import heat_layer
from api.tile_data import attribution
from store.aggregate import Unit, layer_shapes, unit_names
from store.filters import FilterError
from store.snapshot import Snapshot
from tiles.layer import CellLayer
from tiles.static_map import MAX_SIDE, render

router = APIRouter(prefix="/v1/maps", tags=["maps"], responses=ERROR_RESPONSES)


def static_png(
    ask: Ask,
    width: int = 800,
    height: int = 600,
    outline: str | None = None,
) -> bytes:
    """The PNG of the request's ``bbox``: its heatmap as the tiles draw it for this role."""
    flt = ask.common.to_filters()
    if flt.bbox is None:
        raise FilterError("bbox", None, "give the box to draw: minlon,minlat,maxlon,maxlat")
    # The map's own layer (the box frames it, it does not cut the records).
    layer, _ = heat_layer(replace(ask, common=replace(ask.common, bbox=None)))
    credit = attribution(ask.request.app.state.settings.attribution, ask.snap)
    bbox = (flt.bbox.minlon, flt.bbox.minlat, flt.bbox.maxlon, flt.bbox.maxlat)
    return draw(ask.snap, layer, bbox, (width, height), outline, None, credit)


def draw(
    snap: Snapshot,
    layer: CellLayer,
    bbox: tuple[float, float, float, float],
    size: tuple[int, int],
    outline: str | None,
    highlight: tuple[str, str] | None,
    credit: str,
) -> bytes:
    """A static map of a cell layer over ``bbox``.

    ``outline``'s units are drawn and named (default: the first boundary layer),
    ``highlight``'s unit darker.
    """
    outlines: list[object] = []
    labels: list[tuple[str, object]] = []
    layers = snap.boundary_layers
    name = outline if outline is not None else (layers[0] if layers else None)
    if name is not None:
        if name not in layers:
            raise FilterError("outline", name, f"no boundary layer {name!r} ({', '.join(layers)})")
        index, shapes, _ = layer_shapes(snap, Unit("layer", layer=name))
        names = unit_names(snap, Unit("layer", layer=name))
        ids = list(index)
        for i in np.flatnonzero(shapely.intersects(shapes, shapely.box(*bbox))):
            outlines.append(shapes[i])
            labels.append((names.get(ids[i]) or ids[i], shapes[i]))
    marked = None
    if highlight is not None:
        index, shapes, _ = layer_shapes(snap, Unit("layer", layer=highlight[0]))
        if highlight[1] in index:
            marked = shapes[index[highlight[1]]]
    return render(layer, bbox, size[0], size[1], outlines, marked, credit, labels)


@router.get(
    "/static.png",
    summary="A map image of a box: heatmap and boundaries (PNG)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def get_static_map(
    ask: AskDep,
    width: Annotated[int, Query(ge=64, le=MAX_SIDE, description="Pixels.")] = 800,
    height: Annotated[int, Query(ge=64, le=MAX_SIDE, description="Pixels.")] = 600,
    outline: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=r"^[a-z][a-z0-9_]*$",
            description="The boundary layer drawn over the box [default: the first].",
        ),
    ] = None,
) -> Response:
    """The `bbox` at the largest zoom where it fits in `width` × `height`, as PNG.

    Its heatmap is made of the heatmap tiles' own pixels (the public's from the release, a
    key's from the records, as on /map) under the filters; the boundary outlines and the
    data's credit are drawn over it.

    Example: the Centro in 2023 — `/v1/maps/static.png?bbox=-99.16,19.41,-99.11,19.45&start=2023-01-01&end=2024-01-01`.
    """
    png = static_png(ask, width, height, outline)
    cache = "public, max-age=300" if ask.principal.public else "private"
    headers = {**ask.headers, "Cache-Control": cache}
    return Response(png, media_type="image/png", headers=headers)
