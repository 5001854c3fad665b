"""Mapbox Vector Tile encoding shared by the tile sets: tile space, one call to the encoder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mapbox_vector_tile

EXTENT = 4096
BUFFER = 64  # of EXTENT: shapes run a little past the edge, so that strokes join


def encode(layers: Sequence[tuple[str, list[dict[str, Any]]]]) -> bytes:
    """Layers of features whose geometries are in tile space (0..EXTENT, y down); b"": none."""
    shown = [{"name": name, "features": features} for name, features in layers if features]
    if not shown:
        return b""
    return bytes(
        mapbox_vector_tile.encode(shown, default_options={"extents": EXTENT, "y_coord_down": True})
    )
