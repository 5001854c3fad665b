"""Drawn areas: a 500 m circle and a 40-vertex polygon over one year, and the baseline.

    python benchmarks/areas.py --store DIR [--rounds 30]

Ours: counts by colonia inside each shape for 2023 (``/v1/aggregate?unit=colonia``, the
circle by GET, the polygon posted) and the whole /v1/area answer, over HTTP on 127.0.0.1
with an analyst key (exact figures), p50 and p95 of ``--rounds`` each after one warm-up.
The baseline is DuckDB with its spatial extension (``ST_Contains`` of the same shape over
the same records, grouped by colonia, in process): the extension loads only into duckdb
1.5.5, so it runs in a virtual environment of its own (.cache/spatial-venv, made on first
use). Both must count the same records.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [
    str(_HERE.parent),
    *(p for p in sys.path if Path(p or ".").resolve() != _HERE),
    str(_HERE),
]

import httpx  # noqa: E402
import shapely  # noqa: E402
from harness import pct, run, serve  # noqa: E402

from store import Store  # noqa: E402
from store.shapes import circle_polygon  # noqa: E402

YEAR = {"start": "2023-01-01", "end": "2024-01-01"}
ZOCALO = (-99.1332, 19.4326)
SPATIAL = _HERE.parent / ".cache" / "spatial-venv"

BASELINE = """
import json, sys, time, duckdb
files, shapes, rounds, extension = json.loads(sys.stdin.read())
con = duckdb.connect()
con.execute(f"LOAD '{extension}'")
out = {}
for name, wkt in shapes.items():
    sql = ("SELECT colonia::VARCHAR, count(*) FROM read_parquet(?) WHERE local_date >= DATE '2023-01-01' "
           "AND local_date < DATE '2024-01-01' AND ST_Contains(ST_GeomFromText(?), ST_Point(lon, lat)) GROUP BY 1")
    con.execute(sql, [files, wkt]).fetchall()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        rows = con.execute(sql, [files, wkt]).fetchall()
        times.append((time.perf_counter() - t0) * 1000)
    out[name] = {"times": times, "total": sum(n for _, n in rows)}
print(json.dumps(out))
"""


def forty_vertices() -> shapely.Polygon:
    """An irregular 40-vertex ring about 1 km across over Roma and Condesa."""
    lon0, lat0 = -99.162, 19.415
    ring = []
    for i in range(40):
        a = 2 * math.pi * i / 40
        r = 900 * (0.75 + 0.25 * math.sin(5 * a))  # a five-lobed outline, metres
        ring.append(
            (lon0 + r * math.sin(a) / (111_320 * math.cos(math.radians(lat0))), lat0 + r * math.cos(a) / 110_574)
        )  # fmt: skip
    return shapely.Polygon(ring)


def spatial_python() -> tuple[Path, str]:
    """The baseline's interpreter and extension file (made on first use)."""
    python = SPATIAL / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(SPATIAL)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "duckdb==1.5.5",
                        "duckdb-extension-spatial==1.5.5"], check=True)  # fmt: skip
    found = subprocess.run(
        [str(python), "-c", "import duckdb_extension_spatial, pathlib; p = pathlib.Path("
         "duckdb_extension_spatial.__file__).parent; print(next(p.rglob('*.duckdb_extension')))"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return python, found.stdout.strip()


def _ask(c: httpx.Client, path: str, name: str, shape: shapely.Geometry) -> httpx.Response:
    """One request: the circle by GET, the polygon posted."""
    params = {**YEAR, "unit": "colonia"} if path == "/v1/aggregate" else dict(YEAR)
    if name == "circle 500 m":
        circle = f"circle:{ZOCALO[0]},{ZOCALO[1]},500"
        response = c.get(path, params={**params, "within": circle})
    else:
        response = c.post(path, params=params, json=shapely.geometry.mapping(shape))
    response.raise_for_status()
    return response


def ours(url: str, key: str, shapes: dict[str, shapely.Geometry], rounds: int) -> dict[str, dict]:
    """p50/p95 over HTTP of /v1/aggregate and /v1/area for each shape."""
    out: dict[str, dict] = {}
    with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {key}"}) as c:
        for name, shape in shapes.items():
            for path in ("/v1/aggregate", "/v1/area"):
                first = _ask(c, path, name, shape)
                times = []
                for _ in range(rounds):
                    t0 = time.perf_counter()
                    _ask(c, path, name, shape)
                    times.append((time.perf_counter() - t0) * 1000)
                out[f"{name} {path}"] = {"times": times, "total": first.json()["total"]}
    return out


def main() -> int:
    """Time both shapes over HTTP and with DuckDB-spatial."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    store = Store(args.store)
    files = [str(p) for p in store.data_files(store.require_manifest())]
    shapes = {
        "circle 500 m": circle_polygon(*ZOCALO, 500.0),
        "polygon 40 vertices": forty_vertices(),
    }
    python, extension = spatial_python()
    payload = json.dumps([files, {n: s.wkt for n, s in shapes.items()}, args.rounds, extension])
    done = subprocess.run([str(python), "-c", BASELINE], input=payload, check=True,
                          capture_output=True, text=True)  # fmt: skip
    base = json.loads(done.stdout)
    made = json.loads(run(["keys", "create", "--role", "analyst", "--store", args.store, "--json"]))
    proc, url = serve(Path(args.store))
    try:
        mine = ours(url, made["key"], shapes, args.rounds)
    finally:
        proc.terminate()
        proc.wait()
    print(f"2023, {len(files)} data files, {args.rounds} rounds each (analyst key)")
    for name, got in mine.items():
        t = got["times"]
        print(
            f"{name:38s} p50 {pct(t, 50):7.2f} ms  p95 {pct(t, 95):7.2f} ms  records {got['total']:,}"
        )
    for name, got in base.items():
        t = got["times"]
        print(f"DuckDB-spatial ST_Contains, {name:22s} p50 {pct(t, 50):7.2f} ms  p95 {pct(t, 95):7.2f} ms  records {got['total']:,}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
