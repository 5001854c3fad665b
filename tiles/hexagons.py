"""Hexagon tiles: H3 cells with their counts as a Mapbox Vector Tile (2.1)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import shapely

from geo.cells import cells_to_hex, cells_to_polygons
from geo.crs import transform_xy
from tiles import mvt
from tiles.grid import Bounds
from tiles.mvt import BUFFER, EXTENT

LAYER = "hex"


def encode(cells: npt.NDArray[np.uint64], counts: npt.NDArray[np.int64], bounds: Bounds) -> bytes:
    """One layer ``hex``: a polygon per cell, properties ``h3`` (hex id) and ``count``.

    ``bounds`` are the tile's, in Web Mercator metres; polygons are clipped to the tile
    plus a buffer and rounded to its 4096 grid.
    """
    if cells.size == 0:
        return b""
    polygons = cells_to_polygons(cells)  # lon/lat
    coords = shapely.get_coordinates(polygons)
    mx, my = transform_xy(coords[:, 0], coords[:, 1], "EPSG:4326", "EPSG:3857")
    # Tile space: 0..EXTENT from the west and from the north edge (MVT's own axes), so
    # the encoder needs neither to quantise nor to flip.
    px = (mx - bounds.west) / (bounds.east - bounds.west) * EXTENT
    py = (bounds.north - my) / (bounds.north - bounds.south) * EXTENT
    local = shapely.set_coordinates(polygons.copy(), np.column_stack([px, py]))
    box = shapely.box(-BUFFER, -BUFFER, EXTENT + BUFFER, EXTENT + BUFFER)
    clipped = shapely.intersection(local, box)
    ids = cells_to_hex(cells)
    features = [
        {"geometry": g, "properties": {"h3": i, "count": int(c)}}
        for g, i, c in zip(clipped, ids, counts, strict=True)
        if not g.is_empty
    ]
    return mvt.encode([(LAYER, features)])
