"""A reference basemap cut from the store's own layers: vector tiles in one PMTiles archive.

Most state networks cannot reach a tile CDN, so the map's reference (the outlines and names
of the stored boundary layers, the stored streets with their names) is built from what the
store holds and served by Cuadra itself. Three MVT layers:

- ``boundaries``: polygons of each boundary layer (properties ``layer``, ``id``, ``name``);
- ``labels``: a point inside each polygon, with ``layer``, ``name`` and ``area`` (m², for
  the renderer to place large units' names first);
- ``streets``: street segments (``layer``, ``id``: the ``street_id``, ``name``), which the
  map also colours by the counts ``/v1/aggregate?unit=street`` publishes.

A layer appears from its ``minzoom`` on: few large units (alcaldías) early, colonias and
streets at city and street zooms. Geometries are simplified to half a pixel of each zoom
and clipped to the tile plus a buffer; tiles are gzip-compressed (no timestamp: the same
layers give the same bytes), in tile-id order.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import mercantile
import numpy as np
import numpy.typing as npt
import shapely
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import write

from geo.crs import transform_xy
from tiles import mvt
from tiles.mvt import BUFFER, EXTENT

EARTH = 2 * math.pi * 6378137.0
NAME = "cuadra-basemap"


@dataclass(frozen=True)
class BasemapLayer:
    """One stored layer as the basemap draws it."""

    layer: str  # the store's name: colonia, alcaldia, calles
    kind: str  # "boundary" or "street"
    geometries: npt.NDArray[np.object_]  # shapely, lon/lat (WGS84)
    ids: Sequence[str]  # the units' ids: the map joins counts to them (street_id, colonia)
    names: Sequence[str | None]
    minzoom: int


def minzoom_for(kind: str, features: int) -> int:
    """The first zoom a layer shows at: few large units early, many small ones later."""
    if kind == "street":
        return 13
    if features <= 100:
        return 8
    if features <= 1000:
        return 11
    return 12


def build_basemap(
    layers: Sequence[BasemapLayer],
    path: Path,
    *,
    minzoom: int = 8,
    maxzoom: int = 15,
    attribution: str = "",
) -> int:
    """Write the archive at ``path`` (replaced whole); the number of tiles written.

    The boundary layer with the fewest units starts at ``minzoom`` whatever its own, so
    that a city view always has a reference.
    """
    layers = [layer for layer in layers if len(layer.geometries)]
    boundaries = [layer for layer in layers if layer.kind == "boundary"]
    if boundaries:
        coarsest = min(boundaries, key=lambda layer: len(layer.geometries))
        layers = [replace(x, minzoom=minzoom) if x is coarsest else x for x in layers]
    prepared = [_Prepared.of(layer) for layer in layers]
    if not prepared:
        raise ValueError("the store has no boundary or street layer to draw a basemap from")
    west, south, east, north = _bounds(prepared)
    tiles = sorted(_tiles(prepared, (west, south, east, north), minzoom, maxzoom))
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with write(str(tmp)) as writer:
        for tile_id, data in tiles:
            writer.write_tile(tile_id, data)
        header = {
            "tile_type": TileType.MVT,
            "tile_compression": Compression.GZIP,
            "min_zoom": minzoom,
            "max_zoom": maxzoom,
            # Outward to the next 1e-7 degree: the header's box holds every feature.
            "min_lon_e7": math.floor(west * 1e7),
            "min_lat_e7": math.floor(south * 1e7),
            "max_lon_e7": math.ceil(east * 1e7),
            "max_lat_e7": math.ceil(north * 1e7),
            "center_zoom": minzoom + 3,
            "center_lon_e7": int((west + east) / 2 * 1e7),
            "center_lat_e7": int((south + north) / 2 * 1e7),
        }
        writer.finalize(header, _metadata(prepared, attribution, minzoom, maxzoom))
    tmp.replace(path)
    return len(tiles)


@dataclass(frozen=True)
class _Prepared:
    """A layer in Web Mercator metres, with its label points."""

    source: BasemapLayer
    shapes: npt.NDArray[np.object_]
    labels: npt.NDArray[np.object_] | None
    areas: npt.NDArray[np.float64] | None

    @classmethod
    def of(cls, layer: BasemapLayer) -> _Prepared:
        shapes = _to_mercator(layer.geometries)
        if layer.kind == "street":
            return cls(layer, shapes, None, None)
        # Area in m², from the Mercator area and the scale at each label's latitude.
        points = shapely.point_on_surface(layer.geometries)
        lat = np.radians(shapely.get_y(points))
        areas = shapely.area(shapes) * np.cos(lat) ** 2
        return cls(layer, shapes, _to_mercator(points), areas)


def _to_mercator(geoms: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    def project(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x, y = transform_xy(xy[:, 0], xy[:, 1], "EPSG:4326", "EPSG:3857")
        return np.column_stack([x, y])

    return shapely.transform(np.asarray(geoms, dtype=object), project)


def _bounds(layers: Sequence[_Prepared]) -> tuple[float, float, float, float]:
    boxes = np.array([shapely.total_bounds(layer.source.geometries) for layer in layers])
    return (
        float(boxes[:, 0].min()),
        float(boxes[:, 1].min()),
        float(boxes[:, 2].max()),
        float(boxes[:, 3].max()),
    )


def _tiles(
    layers: Sequence[_Prepared],
    bounds: tuple[float, float, float, float],
    minzoom: int,
    maxzoom: int,
) -> Iterator[tuple[int, bytes]]:
    for z in range(minzoom, maxzoom + 1):
        shown = [layer for layer in layers if layer.source.minzoom <= z]
        if not shown:
            continue
        half_pixel = EARTH / (256 * 2**z) / 2
        simple = [
            shapely.simplify(layer.shapes, half_pixel, preserve_topology=True) for layer in shown
        ]
        trees = [shapely.STRtree(s) for s in simple]
        label_trees = [shapely.STRtree(x.labels) if x.labels is not None else None for x in shown]
        for tile in mercantile.tiles(*bounds, zooms=z):
            box = mercantile.xy_bounds(tile)
            features = _features(shown, simple, trees, label_trees, box)
            if features:
                yield (
                    zxy_to_tileid(z, tile.x, tile.y),
                    gzip.compress(_encode(features, box), 6, mtime=0),
                )


def _features(
    shown: Sequence[_Prepared],
    simple: Sequence[npt.NDArray[np.object_]],
    trees: Sequence[shapely.STRtree],
    label_trees: Sequence[shapely.STRtree | None],
    box: mercantile.Bbox,
) -> dict[str, list[dict[str, object]]]:
    """Each MVT layer's features inside a tile (Mercator metres, clipped with a buffer)."""
    margin = (box.right - box.left) * BUFFER / EXTENT
    rect = (box.left - margin, box.bottom - margin, box.right + margin, box.top + margin)
    out: dict[str, list[dict[str, object]]] = {"boundaries": [], "labels": [], "streets": []}
    area = shapely.box(*rect)
    for layer, shapes, tree, label_tree in zip(shown, simple, trees, label_trees, strict=True):
        src = layer.source
        hit = tree.query(area)
        clipped = _clip(shapes[hit], rect)
        target = "streets" if src.kind == "street" else "boundaries"
        for i, geom in zip(hit, clipped, strict=True):
            if not geom.is_empty:
                props = {"layer": src.layer, "id": src.ids[i], "name": src.names[i] or ""}
                out[target].append({"geometry": geom, "properties": props})
        if label_tree is not None and layer.labels is not None and layer.areas is not None:
            inside = shapely.box(box.left, box.bottom, box.right, box.top)
            for i in label_tree.query(inside):
                if src.names[i]:
                    props = {
                        "layer": src.layer,
                        "name": src.names[i],
                        "area": float(layer.areas[i]),
                    }
                    out["labels"].append({"geometry": layer.labels[i], "properties": props})
    return {name: feats for name, feats in out.items() if feats}


def _clip(
    shapes: npt.NDArray[np.object_], rect: tuple[float, float, float, float]
) -> npt.NDArray[np.object_]:
    try:
        return shapely.clip_by_rect(shapes, *rect)
    except shapely.errors.GEOSException:
        # A ring simplified to a sliver trips the fast clip: the exact intersection instead.
        return shapely.intersection(shapely.make_valid(shapes), shapely.box(*rect))


def _encode(features: dict[str, list[dict[str, object]]], box: mercantile.Bbox) -> bytes:
    def to_tile(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        px = (xy[:, 0] - box.left) / (box.right - box.left) * EXTENT
        py = (box.top - xy[:, 1]) / (box.top - box.bottom) * EXTENT
        return np.column_stack([px, py])

    layers = []
    for name, feats in features.items():
        geoms = shapely.transform(np.array([f["geometry"] for f in feats], dtype=object), to_tile)
        placed = [
            {"geometry": g, "properties": f["properties"]}
            for g, f in zip(geoms, feats, strict=True)
        ]
        layers.append((name, placed))
    return mvt.encode(layers)


def _metadata(
    layers: Sequence[_Prepared], attribution: str, minzoom: int, maxzoom: int
) -> dict[str, object]:
    fields = {"layer": "String", "id": "String", "name": "String"}
    return {
        "name": NAME,
        "attribution": attribution,
        "layers": [
            {"layer": x.source.layer, "kind": x.source.kind, "minzoom": x.source.minzoom}
            for x in layers
        ],
        "vector_layers": [
            {"id": "boundaries", "fields": fields, "minzoom": minzoom, "maxzoom": maxzoom},
            {
                "id": "labels",
                "fields": {**fields, "area": "Number"},
                "minzoom": minzoom,
                "maxzoom": maxzoom,
            },
            {"id": "streets", "fields": fields, "minzoom": minzoom, "maxzoom": maxzoom},
        ],
    }
