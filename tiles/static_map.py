"""A static map image: the heatmap of a cell layer and boundary outlines over a box, as PNG.

For reports (the CompStat pack) and anyone who needs a picture rather than a slippy map.
The image is a window of the Web Mercator pixel grid at the largest zoom where the box
fits, so its heatmap is made of exactly the pixels of the heatmap tiles of that zoom
(same kernel, same colour scale); outlines are drawn over it, the unit of the report
darker, and the data's credit in a corner.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from geo.crs import WGS84, transform_xy
from tiles.grid import MAX_ZOOM, TILE_SIZE, mercator_bounds
from tiles.layer import EARTH, MERCATOR, CellLayer

BACKGROUND = (238, 240, 242, 255)  # the map page's
OUTLINE = (110, 110, 110, 255)
HIGHLIGHT = (63, 0, 125, 255)
MAX_SIDE = 2048


def fit(
    bbox: tuple[float, float, float, float], width: int, height: int
) -> tuple[int, float, float]:
    """The largest zoom (≤ 18) at which the lon/lat box fits in width × height pixels.

    Also the global pixel position of the image's top-left corner (the box centred).
    """
    lons, lats = np.array([bbox[0], bbox[2]]), np.array([bbox[1], bbox[3]])
    xs, ys = transform_xy(lons, lats, WGS84, MERCATOR)
    span_x, span_y = float(xs[1] - xs[0]), float(ys[1] - ys[0])
    z = MAX_ZOOM
    while z > 0 and (span_x / _pixel(z) > width or span_y / _pixel(z) > height):
        z -= 1
    cx, cy = (xs[0] + xs[1]) / 2, (ys[0] + ys[1]) / 2
    left = (cx + EARTH / 2) / _pixel(z) - width / 2
    top = (EARTH / 2 - cy) / _pixel(z) - height / 2
    return z, float(left), float(top)


def _pixel(z: int) -> float:
    return EARTH / (TILE_SIZE * 2**z)


def render(
    layer: CellLayer,
    bbox: tuple[float, float, float, float],
    width: int,
    height: int,
    outlines: Sequence[Any] = (),
    highlight: Any | None = None,
    credit: str = "",
    labels: Sequence[tuple[str, Any]] = (),
) -> bytes:
    """The PNG: the layer's heatmap (tile pixels), outlines, highlight, labels, credit.

    ``labels``: (name, polygon) pairs, each name written inside its polygon where the
    polygon is large enough on the image to hold it.
    """
    z, left, top = fit(bbox, width, height)
    left, top = math.floor(left), math.floor(top)
    canvas = Image.new("RGBA", (width, height), BACKGROUND)
    last = 2**z - 1
    for ty in range(max(top // TILE_SIZE, 0), min((top + height - 1) // TILE_SIZE, last) + 1):
        for tx in range(max(left // TILE_SIZE, 0), min((left + width - 1) // TILE_SIZE, last) + 1):
            png = layer.heatmap_png(mercator_bounds(z, tx, ty), z)
            if not png:
                continue
            tile = Image.open(io.BytesIO(png)).convert("RGBA")
            dx, dy = tx * TILE_SIZE - left, ty * TILE_SIZE - top
            at, part = (max(dx, 0), max(dy, 0)), (max(-dx, 0), max(-dy, 0))
            canvas.alpha_composite(tile, dest=at, source=part)
    draw = ImageDraw.Draw(canvas)
    for geom in outlines:
        _outline(draw, geom, z, left, top, OUTLINE, 1)
    if highlight is not None:
        _outline(draw, highlight, z, left, top, HIGHLIGHT, 3)
    _labels(draw, labels, z, left, top)
    if credit:
        font = ImageFont.load_default(size=12)
        box = draw.textbbox((0, 0), credit, font=font)
        w, h = box[2] - box[0], box[3] - box[1]
        draw.rectangle([width - w - 10, height - h - 8, width, height], fill=(255, 255, 255, 210))
        draw.text((width - w - 5, height - h - 6), credit, fill=(40, 40, 40, 255), font=font)
    out = io.BytesIO()
    canvas.convert("RGB").save(out, format="PNG", optimize=False, compress_level=6)
    return out.getvalue()


def _outline(
    draw: ImageDraw.ImageDraw,
    geom: Any,
    z: int,
    left: int,
    top: int,
    colour: tuple[int, int, int, int],
    width: int,
) -> None:
    """Every ring of a (multi)polygon as lines in the image's pixels."""
    polygons = getattr(geom, "geoms", [geom])
    for polygon in polygons:
        for ring in [polygon.exterior, *polygon.interiors]:
            lon, lat = np.asarray(ring.coords).T[:2]
            x, y = transform_xy(lon, lat, WGS84, MERCATOR)
            px = (x + EARTH / 2) / _pixel(z) - left
            py = (EARTH / 2 - y) / _pixel(z) - top
            draw.line(list(zip(px.tolist(), py.tolist(), strict=True)), fill=colour, width=width)


def _labels(
    draw: ImageDraw.ImageDraw, labels: Sequence[tuple[str, Any]], z: int, left: int, top: int
) -> None:
    """Names at a point inside their polygon, where the name fits its width on the image."""
    font = ImageFont.load_default(size=11)
    for name, polygon in labels:
        minx, miny, maxx, maxy = polygon.bounds
        xs, ys = transform_xy(np.array([minx, maxx]), np.array([miny, maxy]), WGS84, MERCATOR)
        wide = float(xs[1] - xs[0]) / _pixel(z)
        box = draw.textbbox((0, 0), name, font=font)
        if box[2] - box[0] > 0.8 * wide:
            continue
        point = polygon.point_on_surface()
        x, y = transform_xy(np.array([point.x]), np.array([point.y]), WGS84, MERCATOR)
        px = float((x[0] + EARTH / 2) / _pixel(z) - left)
        py = float((EARTH / 2 - y[0]) / _pixel(z) - top)
        white = (255, 255, 255, 255)
        draw.text(
            (px, py),
            name,
            font=font,
            anchor="mm",
            fill=(30, 30, 30, 255),
            stroke_width=2,
            stroke_fill=white,
        )
