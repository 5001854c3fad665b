"""Street tiles: the stored street segments with their published counts, as MVT.

The geometry of a street layer version is projected and indexed once; each tile clips
the segments near it and writes those with a count (``street_id``, ``name``, ``count``).
The counts come from the caller: what ``/v1/aggregate?unit=street`` publishes for the
same filters and role, so a tile shows no other number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from geo.crs import transform_xy
from tiles import mvt
from tiles.grid import Bounds
from tiles.mvt import BUFFER, EXTENT

LAYER = "streets"


@dataclass(frozen=True)
class StreetShapes:
    """A street layer's segments in Web Mercator metres, with their ids, names and index."""

    shapes: npt.NDArray[np.object_]
    ids: Sequence[str]
    names: Sequence[str | None]
    tree: shapely.STRtree

    @classmethod
    def of(
        cls, geometries: npt.NDArray[np.object_], ids: Sequence[str], names: Sequence[str | None]
    ) -> StreetShapes:
        """Segments given in lon/lat (WGS84)."""

        def project(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            x, y = transform_xy(xy[:, 0], xy[:, 1], "EPSG:4326", "EPSG:3857")
            return np.column_stack([x, y])

        shapes = shapely.transform(np.asarray(geometries, dtype=object), project)
        return cls(shapes, ids, names, shapely.STRtree(shapes))

    def mvt(self, bounds: Bounds, counts: Mapping[str, int]) -> bytes:
        """Layer ``streets`` of a tile: the segments near it that have a count (b"": none)."""
        margin = (bounds.east - bounds.west) * BUFFER / EXTENT
        rect = (
            bounds.west - margin,
            bounds.south - margin,
            bounds.east + margin,
            bounds.north + margin,
        )
        hits = [i for i in self.tree.query(shapely.box(*rect)) if self.ids[i] in counts]
        if not hits:
            return b""
        clipped = shapely.clip_by_rect(self.shapes[hits], *rect)

        def to_tile(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            px = (xy[:, 0] - bounds.west) / (bounds.east - bounds.west) * EXTENT
            py = (bounds.north - xy[:, 1]) / (bounds.north - bounds.south) * EXTENT
            return np.column_stack([px, py])

        local = shapely.transform(clipped, to_tile)
        features = [
            {
                "geometry": geom,
                "properties": {
                    "street_id": self.ids[i],
                    "name": self.names[i] or "",
                    "count": int(counts[self.ids[i]]),
                },
            }
            for i, geom in zip(hits, local, strict=True)
            if not geom.is_empty
        ]
        return mvt.encode([(LAYER, features)])
