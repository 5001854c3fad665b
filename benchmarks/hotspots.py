"""Hot spot benchmark: Gi* against esda on the same input, and the statistics routes over HTTP.

Question of issue #4: 2023, offense `ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA`,
`unit=h3:8`, every cell covering Mexico City's colonias (zeros included). Builds a store
of the real records (colonia layer + the 2019-2024 points), starts the server, times
`/v1/hotspots` over HTTP, then times our Gi* and esda's ``G_Local(star=True,
transform="B")`` on the same counts and the same neighbours (from h3-py), checks that the
z-scores are identical, and times the other routes (emerging, near repeat, KDE). Rewrites
the "Hotspots" section of benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/hotspots.py [--requests 30] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import date
from pathlib import Path

import h3
import httpx
import numpy as np
from harness import build_cdmx_store, pct, serve
from results import replace_section

from geo.cells import hex_to_cells
from geo.hotspots import GiWeights, gistar, gistar_permutations, h3_weights

OFFENSE = "ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA"
YEAR = {"start": "2023-01-01", "end": "2024-01-01"}
QUESTION = {"unit": "h3:8", "offense": OFFENSE, **YEAR}


def time_calls(fn: Callable[[], object], n: int) -> list[float]:
    """Milliseconds of ``n`` calls after one warm-up."""
    fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def http_times(url: str, key: str, params: dict[str, object], n: int) -> list[float]:
    """Milliseconds of ``n`` GETs of /v1/hotspots-family routes after a warm-up."""
    path = str(params.pop("path", "/v1/hotspots"))
    with httpx.Client(base_url=url, timeout=120, headers={"Authorization": f"Bearer {key}"}) as c:
        return time_calls(lambda: c.get(path, params=params).raise_for_status(), n)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("CUADRA_RATE_KEYED", "100000/minute")
    work = Path(tempfile.mkdtemp(prefix="cuadra-hotspots-bench-"))
    lines: list[str] = []
    try:
        key = build_cdmx_store(work / "store")
        proc, url = serve(work / "store")
        try:
            with httpx.Client(
                base_url=url, timeout=120, headers={"Authorization": f"Bearer {key}"}
            ) as c:
                body = c.get("/v1/hotspots", params=QUESTION).raise_for_status().json()
            route = http_times(url, key, dict(QUESTION), args.requests)
            others = {
                "`/v1/hotspots` Gi*, 999 permutations": {**QUESTION, "permutations": 999},
                "`/v1/hotspots/emerging`, h3:7, 24 months": {
                    "path": "/v1/hotspots/emerging", "unit": "h3:7", "offense": OFFENSE,
                    "start": "2022-01-01", "end": "2024-01-01"},
                "`/v1/near-repeat`, every offense Jan-Mar 2023, 99 shuffles": {
                    "path": "/v1/near-repeat", "start": "2023-01-01", "end": "2023-04-01"},
                "`/v1/hotspots?method=kde`, the question's points": {**QUESTION, "method": "kde"},
            }  # fmt: skip
            other_times = {name: http_times(url, key, dict(p), 5) for name, p in others.items()}
            with httpx.Client(
                base_url=url, timeout=120, headers={"Authorization": f"Bearer {key}"}
            ) as c:
                events = c.get("/v1/near-repeat", params={"start": "2023-01-01", "end": "2023-04-01"}).json()["events"]  # fmt: skip
        finally:
            proc.terminate()
            proc.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ids = [r["unit_id"] for r in body["rows"]]
    y = np.array([r["count"] for r in body["rows"]], dtype=float)
    cells = hex_to_cells(ids)
    weights = h3_weights(cells, 1)
    from esda.getisord import G_Local
    from libpysal.weights import W

    position = {c: i for i, c in enumerate(ids)}
    w = W({i: [position[d] for d in h3.grid_disk(c, 1) if d in position and d != c]
           for c, i in position.items()}, silence_warnings=True)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        esda_times = time_calls(
            lambda: G_Local(y, w, transform="B", star=True, permutations=0), args.requests
        )
        oracle = G_Local(y, w, transform="B", star=True, permutations=0)
        t0 = time.perf_counter()
        G_Local(y, w, transform="B", star=True, permutations=999, seed=1)
        esda_perm = (time.perf_counter() - t0) * 1000
    # Both sides get their neighbours ready beforehand: esda a libpysal W, ours the
    # prepared weights the server caches per study area.
    prepared = GiWeights.of(weights)
    ours_times = time_calls(lambda: gistar(y, prepared), max(args.requests, 200))
    raw_times = time_calls(lambda: gistar(y, weights), max(args.requests, 200))
    t0 = time.perf_counter()
    gistar_permutations(y, weights, 999, seed=1)
    ours_perm = (time.perf_counter() - t0) * 1000
    z, _ = gistar(y, weights)
    dz = float(np.max(np.abs(z - oracle.Zs)))
    ratio = statistics.median(esda_times) / statistics.median(ours_times)
    lines += [
        f"| `/v1/hotspots` over HTTP (the question, n = {len(ids):,} cells, {int(y.sum()):,} incidents) | "
        f"{statistics.median(route):.1f} ms | {pct(route, 90):.1f} ms |",
        f"| Gi*, ours (`geo.hotspots.gistar`) | {statistics.median(ours_times):.3f} ms | {pct(ours_times, 90):.3f} ms |",
        f"| Gi*, ours from the raw sparse matrix (row sums each call) | {statistics.median(raw_times):.3f} ms | {pct(raw_times, 90):.3f} ms |",
        f"| Gi*, esda `G_Local(permutations=0)` | {statistics.median(esda_times):.3f} ms | {pct(esda_times, 90):.3f} ms |",
        f"| Gi* with 999 permutations, ours / esda (no numba) | {ours_perm:.0f} ms | {esda_perm:.0f} ms |",
        *(f"| {name} | {statistics.median(t):.0f} ms | {max(t):.0f} ms (max of 5) |"
          for name, t in other_times.items()),
    ]  # fmt: skip
    summary = (f"Ours is {ratio:.0f}× faster than esda on the same counts and neighbours; "
               f"max |z_ours - z_esda| = {dz:.1e}. Near repeat: {events:,} events.")  # fmt: skip
    print("\n".join(lines), summary, sep="\n")
    if not args.no_write:
        replace_section("Hotspots", [
            f"{date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores. "
            f"`python benchmarks/hotspots.py` ({args.requests} timed calls after a warm-up "
            "unless stated). Question: `" + OFFENSE + "` in 2023 on `h3:8` cells covering "
            "the colonias.", "", "| what | p50 | p90 |", "|---|---|---|", *lines, "", summary, "",
        ])  # fmt: skip


if __name__ == "__main__":
    main()
