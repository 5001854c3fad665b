"""The map as a person meets it: time to a whole first view, and basemap tiles.

    python benchmarks/map.py --store DIR [--tiles 60] [--views 5]

DIR is a store with the demo's layers and records (``make demo``'s) and its basemap
(``cuadra basemap build``). A server on 127.0.0.1 is started and its public release
awaited; then:

- first view: headless Chromium opens /map (fresh profile each time, nothing cached) and
  reads, from the page's performance timeline, when every default layer (basemap,
  heatmap, colonias, chart) had answered: ``document.body.dataset.readyMs``. Median of
  ``--views`` loads. Target: 1.5 s.
- basemap tiles: ``--tiles`` distinct tiles at zooms 13-15 around the Centro over HTTP,
  each asked once (uncached) and then again (cached: the archive's pages in memory), p50
  and p95; the baseline is the same tiles read straight from the archive with the PMTiles
  reader in this process (no HTTP, no server): what a peer tile server does at best.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# As in tiles.py: this folder after the project's packages ("tiles" names a package).
sys.path[:] = [
    str(_HERE.parent),
    *(p for p in sys.path if Path(p or ".").resolve() != _HERE),
    str(_HERE),
]

import httpx  # noqa: E402
import mercantile  # noqa: E402
from harness import pct, serve, wait_for_release  # noqa: E402
from pmtiles.reader import MmapSource, Reader  # noqa: E402

CENTRO = (-99.1332, 19.4326)


def first_views(url: str, views: int) -> list[float]:
    """Milliseconds to a whole first view of /map, each in a fresh browser profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    out = []
    for _ in range(views):
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,860",
                     "--lang=es-MX", f"--user-data-dir={tempfile.mkdtemp()}"):  # fmt: skip
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
        try:
            driver.get(f"{url}/map")
            for _ in range(600):
                ready = driver.execute_script("return document.body.dataset.readyMs")
                if ready:
                    out.append(float(ready))
                    break
                time.sleep(0.05)
        finally:
            driver.quit()
    return out


def tile_list(n: int) -> list[mercantile.Tile]:
    """Distinct tiles around the Centro at zooms 13-15."""
    tiles: list[mercantile.Tile] = []
    for z in (13, 14, 15):
        centre = mercantile.tile(*CENTRO, z)
        for dx in range(-3, 4):
            for dy in range(-3, 4):
                tiles.append(mercantile.Tile(centre.x + dx, centre.y + dy, z))
    return tiles[:n]


def main() -> int:
    """Serve the store, then time first views and basemap tiles."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True)
    parser.add_argument("--tiles", type=int, default=60)
    parser.add_argument("--views", type=int, default=5)
    args = parser.parse_args()
    root = Path(args.store)
    archive = root / "basemap" / "basemap.pmtiles"
    if not archive.exists():
        raise SystemExit(f"no basemap in {root}: run `cuadra basemap build --store {root}`")
    proc, url = serve(root)
    try:
        waited = wait_for_release(url, timeout=900)
        print(f"public release ready after {waited:.0f} s")
        tiles = tile_list(args.tiles)
        with httpx.Client(base_url=url, timeout=30) as client:
            rounds: dict[str, list[float]] = {"uncached": [], "cached": []}
            for name in rounds:
                for t in tiles:
                    t0 = time.perf_counter()
                    client.get(f"/v1/tiles/basemap/{t.z}/{t.x}/{t.y}.mvt").raise_for_status()
                    rounds[name].append((time.perf_counter() - t0) * 1000)
        with archive.open("rb") as handle:
            reader = Reader(MmapSource(handle))
        direct = []
        for t in tiles:
            t0 = time.perf_counter()
            reader.get(t.z, t.x, t.y)
            direct.append((time.perf_counter() - t0) * 1000)
        views = first_views(url, args.views)
    finally:
        proc.terminate()
        proc.wait()
    print(f"first view, every default layer (ms, {len(views)} loads): median {statistics.median(views):.0f}, "
          f"max {max(views):.0f}")  # fmt: skip
    for name, values in (*rounds.items(), ("baseline: archive read directly", direct)):
        print(
            f"basemap tile {name:32} p50 {pct(values, 50):6.2f} ms  p95 {pct(values, 95):6.2f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
