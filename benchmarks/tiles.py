"""Tile benchmark: heatmap and hexagon tiles over HTTP on the real data, and the baseline.

Builds a store of the real records (colonias + 2019-2024 points), starts the server and,
with an analyst key (every incident, fine cells): times uncached heatmap tiles at zooms
13-15 around the city centre (each tile requested once; the filter set's cell table
warmed by one other tile first), the same tile again (cached), and hexagon tiles at zoom
12. The baseline renders the same weighted points for the same tile the straightforward
way: numpy histogram2d + scipy.ndimage.gaussian_filter + Pillow RGBA PNG at its default
compression; ours renders the same in-process. Rewrites the "Tiles" section of
benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/tiles.py [--tiles 40] [--no-write]
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

# This script is benchmarks/tiles.py: its folder must come after the project's packages,
# or "tiles" would name this file rather than the package it measures.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [
    str(_HERE.parent),
    *(p for p in sys.path if Path(p or ".").resolve() != _HERE),
    str(_HERE),
]

import mercantile  # noqa: E402
import numpy as np  # noqa: E402
from harness import build_cdmx_store, pct, serve  # noqa: E402
from PIL import Image  # noqa: E402
from results import replace_section  # noqa: E402
from scipy import ndimage  # noqa: E402

from geo.cells import cells_to_latlng, cells_to_parents, points_to_cells  # noqa: E402
from geo.crs import WGS84, transform_xy  # noqa: E402
from tiles import heatmap  # noqa: E402
from tiles.grid import mercator_bounds  # noqa: E402
from tiles.layer import CellLayer  # noqa: E402

CENTRE = (-99.1332, 19.4326)


def ring_of_tiles(z: int, n: int) -> list[mercantile.Tile]:
    """``n`` distinct tiles spiralling out from the centre at zoom ``z``."""
    c = mercantile.tile(*CENTRE, z)
    out, r = [], 0
    while len(out) < n:
        for dx in range(-r, r + 1):
            for dy in range(-r, r + 1):
                if max(abs(dx), abs(dy)) == r and len(out) < n:
                    out.append(mercantile.Tile(c.x + dx, c.y + dy, z))
        r += 1
    return out


def baseline(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, tile: mercantile.Tile, radius: float
) -> bytes:
    """The straightforward render: histogram2d, Gaussian blur, RGBA PNG (default level)."""
    b = mercator_bounds(tile.z, tile.x, tile.y)
    grid, _, _ = np.histogram2d(b.north - y, x - b.west, bins=256, weights=w,
                                range=[[0, b.north - b.south], [0, b.east - b.west]])  # fmt: skip
    pixel = (b.east - b.west) / 256
    smooth = ndimage.gaussian_filter(grid, sigma=radius / pixel / 2)
    top = smooth.max() or 1.0
    v = np.sqrt(smooth / top)
    rgba = np.zeros((256, 256, 4), np.uint8)
    rgba[..., 0] = 240
    rgba[..., 1] = (200 * (1 - v)).astype(np.uint8)
    rgba[..., 3] = (235 * v).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, "PNG")
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tiles", type=int, default=40)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("CUADRA_RATE_KEYED", "100000/minute")
    work = Path(tempfile.mkdtemp(prefix="cuadra-tiles-bench-"))
    lines: list[str] = []
    try:
        key = build_cdmx_store(work / "store")
        proc, url = serve(work / "store")
        try:
            # One keep-alive connection of the standard library's client: the lightest
            # client, so that the figures are the server's (httpx adds ~0.5 ms a request).
            where = urlparse(url)
            conn = http.client.HTTPConnection(
                where.hostname or "127.0.0.1", where.port, timeout=120
            )
            auth = {"Authorization": f"Bearer {key}"}

            def get(path: str) -> tuple[float, bytes]:
                t0 = time.perf_counter()
                conn.request("GET", path, headers=auth)
                response = conn.getresponse()
                body = response.read()
                if response.status not in (200, 204):
                    raise SystemExit(f"{path}: {response.status} {body[:200]!r}")
                return (time.perf_counter() - t0) * 1000, body

            if True:  # the requests, on that connection
                first, _ = get("/v1/tiles/heatmap/11/458/916.png")  # builds the cell table
                heat: dict[int, list[float]] = {}
                for z in (13, 14, 15):
                    get(f"/v1/tiles/heatmap/{z}/0/0.png")  # this zoom's colour scale
                    heat[z] = [get(f"/v1/tiles/heatmap/{t.z}/{t.x}/{t.y}.png")[0]
                               for t in ring_of_tiles(z, args.tiles)]  # fmt: skip
                probe = mercantile.tile(*CENTRE, 14)
                hot = [
                    get(f"/v1/tiles/heatmap/14/{probe.x}/{probe.y}.png")[0]
                    for _ in range(args.tiles)
                ]
                get("/v1/tiles/hex/12/0/0.mvt")  # the resolution-8 cell table
                hexes = [
                    get(f"/v1/tiles/hex/{t.z}/{t.x}/{t.y}.mvt")[0] for t in ring_of_tiles(12, 9)
                ]
                sizes = [len(get(f"/v1/tiles/heatmap/14/{t.x}/{t.y}.png")[1])
                         for t in ring_of_tiles(14, 9)]  # fmt: skip
        finally:
            proc.terminate()
            proc.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    # The same weighted points for ours and the baseline: res-11 cells of every record.
    import pyarrow.parquet as pq
    from harness import POINTS

    t = pq.read_table(POINTS, columns=["latitud", "longitud"])
    lat, lon = (t[c].to_numpy(zero_copy_only=False) for c in ("latitud", "longitud"))
    ok = np.isfinite(lat) & np.isfinite(lon) & (lon > -99.4)
    cells, counts = np.unique(
        cells_to_parents(points_to_cells(lon[ok], lat[ok]), 11), return_counts=True
    )
    clat, clon = cells_to_latlng(cells)
    x, y = transform_xy(clon, clat, WGS84, "EPSG:3857")
    order = np.argsort(x)
    layer = CellLayer(11, cells[order], counts[order].astype(float), x[order], y[order], "bench")
    ours_ms, base_ms = [], []
    for tile in ring_of_tiles(14, args.tiles):
        b = mercator_bounds(tile.z, tile.x, tile.y)
        radius = layer.radius(14)
        scale = layer.scale(14)
        near = layer.near(b, radius)
        px, py, pw = layer.x[near], layer.y[near], layer.counts[near]
        t0 = time.perf_counter()
        heatmap.encode_png(heatmap.levels(heatmap.density(px, py, pw, b, radius), scale))
        ours_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        baseline(px, py, pw, tile, radius)
        base_ms.append((time.perf_counter() - t0) * 1000)
    ratio = statistics.median(base_ms) / statistics.median(ours_ms)
    lines += [
        f"| first heatmap tile of a new filter set (builds its cell table) | {first:.0f} ms | |",
        *(f"| heatmap tile, uncached, zoom {z} (over HTTP) | {statistics.median(v):.1f} ms | {pct(v, 90):.1f} ms |"
          for z, v in heat.items()),
        f"| heatmap tile, cached (over HTTP) | {statistics.median(hot):.2f} ms | {pct(hot, 90):.2f} ms |",
        f"| hexagon MVT tile, uncached, zoom 12 (over HTTP) | {statistics.median(hexes):.1f} ms | {max(hexes):.1f} ms (max of 9) |",
        f"| render, ours (KDE by FFT + palette PNG), zoom 14, in-process | {statistics.median(ours_ms):.2f} ms | {pct(ours_ms, 90):.2f} ms |",
        f"| render, baseline (histogram2d + gaussian_filter + RGBA PNG), same points | {statistics.median(base_ms):.2f} ms | {pct(base_ms, 90):.2f} ms |",
    ]  # fmt: skip
    summary = (f"Our render is {ratio:.1f}× faster than the baseline on the same points; heatmap "
               f"tiles weigh {statistics.median(sizes) / 1024:.1f} KiB (median, zoom 14).")  # fmt: skip
    print("\n".join(lines), summary, sep="\n")
    if not args.no_write:
        replace_section("Tiles", [
            f"{date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores. "
            f"`python benchmarks/tiles.py`: analyst key (every incident of 2019-2024, cells of "
            f"resolution 11), {args.tiles} distinct tiles per zoom around the Zócalo, each asked once.",
            "", "| what | p50 | p90 |", "|---|---|---|", *lines, "", summary, "",
        ])  # fmt: skip


if __name__ == "__main__":
    main()
