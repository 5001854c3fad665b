"""TileJSON 3.0 documents of Cuadra's tile sets (heatmap PNG, hexagon MVT)."""

from __future__ import annotations

from typing import Any, Literal

from tiles import hexagons
from tiles.grid import MAX_ZOOM, MIN_ZOOM

WORLD = (-180.0, -85.0511, 180.0, 85.0511)
DESCRIPTIONS = {
    "heatmap": "Kernel density of incidents",
    "hex": "Incidents per H3 cell (resolution by zoom)",
}


def tilejson(
    kind: Literal["heatmap", "hex"],
    tiles_url: str,
    bounds: tuple[float, float, float, float] | None,
    attribution: str,
) -> dict[str, Any]:
    """The TileJSON of a tile set: ``tiles_url`` a template with {z}/{x}/{y}, ``bounds`` in lon/lat."""
    box = bounds or WORLD
    body: dict[str, Any] = {
        "tilejson": "3.0.0",
        "name": f"cuadra-{kind}",
        "description": DESCRIPTIONS[kind],
        "version": "1.0.0",
        "attribution": attribution,
        "scheme": "xyz",
        "tiles": [tiles_url],
        "minzoom": MIN_ZOOM,
        "maxzoom": MAX_ZOOM,
        "bounds": list(box),
        "center": [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 11],
        "vector_layers": [],
    }
    if kind == "hex":
        body["vector_layers"] = [
            {
                "id": hexagons.LAYER,
                "fields": {"h3": "String", "count": "Number"},
                "minzoom": MIN_ZOOM,
                "maxzoom": MAX_ZOOM,
                "description": "One polygon per H3 cell",
            }
        ]
    return body
