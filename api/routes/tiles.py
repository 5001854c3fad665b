"""Tiles: heatmap PNG and hexagon MVT, their TileJSON, with ETags and an in-process cache."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from cachetools import LRUCache
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from api import basemap
from api.context import Ask, AskDep
from api.deps import FiltersDep, SnapshotDep
from api.errors import ERROR_RESPONSES
from api.responses import json_response
from api.tile_data import area_bounds, attribution, cell_layer
from store.aggregate import Unit
from store.filters import FilterError, Filters
from store.snapshot import Snapshot
from tiles.grid import MAX_ZOOM, MIN_ZOOM, TILE_SIZE, Bounds, hex_res, mercator_bounds
from tiles.layer import CellLayer
from tiles.tilejson import tilejson

router = APIRouter(prefix="/v1/tiles", tags=["tiles"], responses=ERROR_RESPONSES)
HEAT_RES = 11  # analysts: the fine cells (about 25 m across)
MVT = "application/vnd.mapbox-vector-tile"
MAX_AGE = 300
_tiles: LRUCache[str, bytes] = LRUCache(maxsize=64 * 2**20, getsizeof=len)
_tiles_lock = threading.Lock()

Z = Annotated[int, Path(ge=MIN_ZOOM, le=MAX_ZOOM, description="Zoom level.")]
X = Annotated[int, Path(ge=0, le=2**MAX_ZOOM - 1, description="Tile column.")]
Y = Annotated[int, Path(ge=0, le=2**MAX_ZOOM - 1, description="Tile row (XYZ, north first).")]
TILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    204: {"description": "No data in this tile."},
    304: {"description": "Not modified (If-None-Match matched the ETag)."},
}


def _bounds(z: int, x: int, y: int) -> Bounds:
    if x >= 2**z or y >= 2**z:
        raise FilterError(
            "x" if x >= 2**z else "y", x if x >= 2**z else y, f"must be below {2**z} at zoom {z}"
        )
    return mercator_bounds(z, x, y)


def _serve(ask: Ask, flt: Filters, etag: str, media: str, render: Callable[[], bytes]) -> Response:
    # Keyed tiles may hold what the public may not see: private caches only.
    scope = "public" if ask.principal.public else "private"
    headers = {
        "ETag": etag,
        "Cache-Control": f"{scope}, max-age={MAX_AGE}",
        "Vary": "Authorization, X-API-Key",
        **ask.headers_for(flt),
    }
    if etag in ask.request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    with _tiles_lock:
        body = _tiles.get(etag)
    if body is None:
        body = render()
        with _tiles_lock:
            _tiles[etag] = body
    if not body:
        return Response(status_code=204, headers=headers)
    return Response(body, media_type=media, headers=headers)


def _etag(layer: CellLayer, *parts: object) -> str:
    return '"' + hashlib.sha256(repr((layer.key, *parts)).encode()).hexdigest()[:32] + '"'


def _heat_layer(ask: Ask) -> tuple[CellLayer, Filters]:
    res = HEAT_RES if not ask.principal.public else ask.request.app.state.settings.tiles_public_res
    flt, pub = ask.answering(Unit("h3", res=res))
    return cell_layer(ask.snap, res, flt, pub, ask.rules, ask.cursor), flt


@router.get(
    "/heatmap/{z}/{x}/{y}@2x.png",
    summary="Heatmap tile, 512 × 512 (high-density screens)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **TILE_RESPONSES},
)
def get_heatmap_2x(ask: AskDep, z: Z, x: X, y: Y) -> Response:
    """The heatmap tile at twice the pixels (same area, same colours)."""
    layer, flt = _heat_layer(ask)
    etag = _etag(layer, "heat", z, x, y, 2)
    return _serve(
        ask, flt, etag, "image/png", lambda: layer.heatmap_png(_bounds(z, x, y), z, 2 * TILE_SIZE)
    )


@router.get(
    "/heatmap/{z}/{x}/{y}.png",
    summary="Heatmap tile: kernel density of the selection, 256 × 256 PNG",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **TILE_RESPONSES},
)
def get_heatmap(ask: AskDep, z: Z, x: X, y: Y) -> Response:
    """Quartic kernel density of the matching incidents, from published H3 cell counts.

    Keys: the fine cells (resolution 11). Public: the counts /v1/aggregate publishes at
    resolution 9 (suppression applied; never points). One colour scale per zoom and filter
    set. Example: `/v1/tiles/heatmap/13/1838/3666.png?offense=ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA`.
    """
    layer, flt = _heat_layer(ask)
    etag = _etag(layer, "heat", z, x, y, 1)
    return _serve(ask, flt, etag, "image/png", lambda: layer.heatmap_png(_bounds(z, x, y), z))


@router.get(
    "/hex/{z}/{x}/{y}.mvt",
    summary="Hexagon tile: H3 cells with their counts, Mapbox Vector Tile 2.1",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}, **TILE_RESPONSES},
)
def get_hex(ask: AskDep, z: Z, x: X, y: Y) -> Response:
    """Layer `hex`: one polygon per H3 cell with properties `h3` and `count`.

    The resolution follows the zoom (docs/api.md); the counts are those /v1/aggregate
    publishes for the same cells and filters. Example: `/v1/tiles/hex/12/919/1833.mvt`.
    """
    res = hex_res(z)
    if ask.principal.public:
        res = min(res, ask.rules.finest_h3)
    flt, pub = ask.answering(Unit("h3", res=res))
    layer = cell_layer(ask.snap, res, flt, pub, ask.rules, ask.cursor)
    etag = _etag(layer, "hex", z, x, y)

    return _serve(ask, flt, etag, MVT, lambda: layer.hexagons_mvt(_bounds(z, x, y)))


def _tilejson(request: Request, snap: Snapshot, kind: Literal["heatmap", "hex"]) -> dict[str, Any]:
    query = urlencode(list(request.query_params.multi_items()))
    suffix = "png" if kind == "heatmap" else "mvt"
    url = f"{str(request.base_url).rstrip('/')}/v1/tiles/{kind}/{{z}}/{{x}}/{{y}}.{suffix}"
    url += f"?{query}" if query else ""
    credit = attribution(request.app.state.settings.attribution, snap)
    return tilejson(kind, url, area_bounds(snap), credit)


@router.get("/heatmap.json", summary="TileJSON 3.0 of the heatmap tiles")
def get_heatmap_tilejson(request: Request, snap: SnapshotDep, filters: FiltersDep) -> Any:
    """TileJSON 3.0; the request's filters are carried into the tile URL template."""
    filters.to_filters()  # a bad filter fails here, not on every tile
    return json_response(_tilejson(request, snap, "heatmap"), {})


@router.get("/hex.json", summary="TileJSON 3.0 of the hexagon tiles")
def get_hex_tilejson(request: Request, snap: SnapshotDep, filters: FiltersDep) -> Any:
    """TileJSON 3.0 with the `hex` vector layer; filters carried into the URL template."""
    filters.to_filters()
    return json_response(_tilejson(request, snap, "hex"), {})


@router.get(
    "/basemap/{z}/{x}/{y}.mvt",
    summary="Basemap tile: the stored layers' outlines, names and streets (no counts)",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}, **TILE_RESPONSES},
)
def get_basemap(request: Request, z: Z, x: X, y: Y) -> Response:
    """The reference beneath the map, from the store's own archive or CUADRA_BASEMAP's.

    Layers `boundaries` (`layer`, `name`), `labels` (`layer`, `name`, `area`) and `streets`
    (`name`): what the stored layers hold, no incident. `cuadra basemap build` writes the
    store's archive (docs/operations.md). 204 where the archive has no tile.
    """
    _bounds(z, x, y)
    settings = request.app.state.settings
    chosen = basemap.choose(settings.basemap, settings.basemap_url, request.app.state.store)
    data, encoding = basemap.tile(chosen, z, x, y)
    headers = {"Cache-Control": f"public, max-age={MAX_AGE}", **encoding}
    if not data:
        return Response(status_code=204, headers={"Cache-Control": headers["Cache-Control"]})
    return Response(data, media_type=MVT, headers=headers)
