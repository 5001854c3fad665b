"""Tiles: heatmap PNG and hexagon MVT, their TileJSON, with ETags and an in-process cache."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from cachetools import LRUCache
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from api import basemap
from api.context import Ask, AskDep
from api.deps import FiltersDep, SnapshotDep, query_group
from api.errors import ERROR_RESPONSES
from api.responses import json_response
from api.tile_data import area_bounds, attribution, cell_layer, street_counts, street_shapes
from store.aggregate import Unit
from store.filters import FilterError, Filters
from store.snapshot import Kind, Snapshot
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


def _heat_res(ask: Ask) -> int:
    return HEAT_RES if not ask.principal.public else ask.request.app.state.settings.tiles_public_res


def heat_layer(ask: Ask) -> tuple[CellLayer, Filters]:
    """The heatmap's cell layer as the requester may see it, and its filters.

    Keys: resolution-11 cells of the records; the public: the release's published cells.
    """
    res = _heat_res(ask)
    flt, pub = ask.answering(Unit("h3", res=res))
    return cell_layer(ask.snap, res, flt, pub, ask.rules, ask.cursor), flt


MAX_SCALE_MONTHS = 36


@dataclass(frozen=True)
class HeatScale:
    """One colour scale for the months of an animation (the heatmap's own otherwise)."""

    scale_start: Annotated[
        date | None,
        Query(
            description="With scale_end: the top colour is the highest monthly density of "
            "the whole months in [scale_start, scale_end) (at most 36), so that the months "
            "of an animation share one scale. First day of a month.",
            examples=["2024-01-01"],
        ),
    ] = None
    scale_end: Annotated[
        date | None,
        Query(description="First day of the month after the last.", examples=["2025-01-01"]),
    ] = None

    def months(self) -> list[tuple[date, date]]:
        """The [start, end) of each month of the window; FilterError when it is not one."""
        if self.scale_start is None and self.scale_end is None:
            return []
        if self.scale_start is None or self.scale_end is None:
            missing = "scale_end" if self.scale_end is None else "scale_start"
            raise FilterError(missing, None, "give both scale_start and scale_end, or neither")
        for name, day in (("scale_start", self.scale_start), ("scale_end", self.scale_end)):
            if day.day != 1:
                raise FilterError(name, day.isoformat(), "must be the first day of a month")
        first = self.scale_start.year * 12 + self.scale_start.month - 1
        last = self.scale_end.year * 12 + self.scale_end.month - 1
        if not 0 < last - first <= MAX_SCALE_MONTHS:
            raise FilterError(
                "scale_end", self.scale_end.isoformat(),
                f"the window must hold 1 to {MAX_SCALE_MONTHS} whole months after scale_start",
            )  # fmt: skip
        starts = [date(k // 12, k % 12 + 1, 1) for k in range(first, last + 1)]
        return list(zip(starts[:-1], starts[1:], strict=True))


HeatScaleDep = Annotated[HeatScale, Depends(query_group(HeatScale))]


SHARED_SCALES = Kind("animation colour scales", items=256)


def _shared_scale(ask: Ask, window: HeatScale, z: int) -> float | None:
    """The highest of the months' own colour scales at ``z`` (None without a window).

    Computed once per snapshot, role, other filters, window and zoom: every tile of every
    month of an animation asks for the same.
    """
    months = window.months()
    if not months:
        return None
    res = _heat_res(ask)
    others = repr(replace(ask.common, start=None, end=None))
    key = (ask.principal.public, ask.principal.scopes, others, window, z)

    def compute() -> float:
        best = 0.0
        for start, end in months:
            # The request's other filters over one month: that month's tiles' own layer.
            month = replace(ask, common=replace(ask.common, start=start, end=end))
            flt, pub = month.answering(Unit("h3", res=res))
            best = max(best, cell_layer(ask.snap, res, flt, pub, ask.rules, ask.cursor).scale(z))
        return best

    return ask.snap.memo(SHARED_SCALES, key, compute)


@router.get(
    "/heatmap/{z}/{x}/{y}@2x.png",
    summary="Heatmap tile, 512 × 512 (high-density screens)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **TILE_RESPONSES},
)
def get_heatmap_2x(ask: AskDep, window: HeatScaleDep, z: Z, x: X, y: Y) -> Response:
    """The heatmap tile at twice the pixels (same area, same colours)."""
    layer, flt = heat_layer(ask)
    scale = _shared_scale(ask, window, z)
    etag = _etag(layer, "heat", z, x, y, 2, scale)
    return _serve(
        ask,
        flt,
        etag,
        "image/png",
        lambda: layer.heatmap_png(_bounds(z, x, y), z, 2 * TILE_SIZE, scale),
    )


@router.get(
    "/heatmap/{z}/{x}/{y}.png",
    summary="Heatmap tile: kernel density of the selection, 256 × 256 PNG",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **TILE_RESPONSES},
)
def get_heatmap(ask: AskDep, window: HeatScaleDep, z: Z, x: X, y: Y) -> Response:
    """Quartic kernel density of the matching incidents, from published H3 cell counts.

    Keys: the fine cells (resolution 11). Public: the counts /v1/aggregate publishes at
    resolution 9 (suppression applied; never points). One colour scale per zoom and filter
    set. Example: `/v1/tiles/heatmap/13/1838/3666.png?offense=ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA`.
    """
    layer, flt = heat_layer(ask)
    scale = _shared_scale(ask, window, z)
    etag = _etag(layer, "heat", z, x, y, 1, scale)
    return _serve(
        ask, flt, etag, "image/png", lambda: layer.heatmap_png(_bounds(z, x, y), z, scale=scale)
    )


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


STREET_MIN_ZOOM = 12


@router.get(
    "/streets/{z}/{x}/{y}.mvt",
    summary="Street tile: each street segment with its published count, MVT",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}, **TILE_RESPONSES},
)
def get_streets(ask: AskDep, z: Z, x: X, y: Y) -> Response:
    """Layer `streets`: the segments with a count, properties `street_id`, `name`, `count`.

    The counts are those /v1/aggregate?unit=street publishes for the same filters and
    role (public rules for the public); zooms 12 and up. Example:
    `/v1/tiles/streets/15/7347/14664.mvt?start=2023-01-01&end=2024-01-01`.
    """
    shapes = street_shapes(ask.snap)
    if shapes is None:
        raise FilterError("unit", "street", "the store has no street network")
    if z < STREET_MIN_ZOOM:
        raise FilterError("z", z, f"street tiles start at zoom {STREET_MIN_ZOOM}")
    assert ask.snap.manifest.street_layer is not None
    flt, pub = ask.answering(Unit("street", layer=ask.snap.manifest.street_layer))
    counts, digest = street_counts(ask.snap, flt, pub, ask.rules, ask.cursor)
    etag = '"' + hashlib.sha256(repr((digest, "streets", z, x, y)).encode()).hexdigest()[:32] + '"'
    return _serve(ask, flt, etag, MVT, lambda: shapes.mvt(_bounds(z, x, y), counts))


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
