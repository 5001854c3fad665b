"""Scale benchmark: ingest and /v1/aggregate at 1× and 10× the real CDMX records.

The 10× input is one Parquet file of ten copies of the 2019-2024 points, copy k re-dated
7·k years earlier (same places and offenses, new dates: 1956-2024), written copy by copy.
Each store gets the colonias and then one `cuadra ingest` of its file (a process: wall
time and peak RSS). Then each store is served and timed on two questions by colonia —
one year (2023) and the whole record — and on H3 cells at resolution 8 over every offense
(one year, 2024; a window with month edges, July 2021 to 2024; and every year the store
holds up to 2025), over a keep-alive connection, once the server says its snapshot's span
cubes are built. Rewrites the "Scale" section of benchmarks/RESULTS.md. With ``--load
STORE``, then the load run of benchmarks/workers.py (1 and 4 processes and the DuckDB +
Flask peer under locust) on that store, whose public release is kept: its "Load by
processes" section.

    .venv/bin/python benchmarks/scale.py [--copies 10] [--requests 40] [--engine local]
        [--load DEMO_STORE [--load-seconds 15]]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path
from urllib.parse import urlencode, urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from harness import CDMX, CUADRA, POINTS, measure, pct, run, serve, write_redated_profile
from results import replace_section
from workers import load_run

OFFENSE = "ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA"
QUESTIONS = {
    "one year (2023)": {"unit": "colonia", "offense": OFFENSE, "start": "2023-01-01", "end": "2024-01-01"},
    "whole record": {"unit": "colonia", "offense": OFFENSE},
    "h3:8, 2024": {"unit": "h3:8", "start": "2024-01-01", "end": "2025-01-01"},
    "h3:8, 2021-07 to 2024": {"unit": "h3:8", "start": "2021-07-01", "end": "2025-01-01"},
    "h3:8, first year to 2025": {"unit": "h3:8", "start": "{first}-01-01", "end": "2025-01-01"},
}  # fmt: skip


def write_copies(path: Path, copies: int) -> int:
    """Ten (``copies``) re-dated copies of the points in one Parquet file; its rows."""
    source = pq.read_table(POINTS)
    fecha = pc.cast(source["fecha_hecho"], pa.string())
    at = source.column_names.index("fecha_hecho")
    rows = 0
    with pq.ParquetWriter(path, source.set_column(at, "fecha_hecho", fecha).schema) as out:
        for k in range(copies):
            years = pc.subtract(pc.cast(pc.utf8_slice_codeunits(fecha, 0, 4), pa.int32()), 7 * k)
            moved = pc.binary_join_element_wise(
                pc.cast(years, pa.string()), pc.utf8_slice_codeunits(fecha, 4, 100), ""
            )
            out.write_table(source.set_column(at, "fecha_hecho", moved), row_group_size=250_000)
            rows += source.num_rows
    return rows


def time_questions(url: str, n: int, key: str, first: int) -> dict[str, list[float]]:
    """Milliseconds of ``n`` requests per question after one warm-up, keep-alive.

    ``first``: the store's first year (the longest question starts there).
    """
    where = urlparse(url)
    conn = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=120)
    deadline = time.time() + 600
    while True:  # the span cubes are built in the background when the server starts
        conn.request("GET", "/health")
        health = json.loads(conn.getresponse().read())
        if health["cubes"] in ("ready", "failed") or time.time() > deadline:
            break
        time.sleep(0.2)
    out: dict[str, list[float]] = {}
    for name, params in QUESTIONS.items():
        asked = {k: v.format(first=first) for k, v in params.items()}
        path = "/v1/aggregate?" + urlencode(asked)
        times = []
        for i in range(n + 1):
            t0 = time.perf_counter()
            conn.request("GET", path, headers={"Authorization": f"Bearer {key}"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"{path}: {response.status}")
            if i:
                times.append((time.perf_counter() - t0) * 1000)
        out[name] = times
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--engine", default="local", choices=["local", "dask"])
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--load", type=Path, help="a store with a kept release: load run on it")
    parser.add_argument("--load-seconds", type=int, default=15)
    args = parser.parse_args()
    scale_run(args)
    if args.load:
        # A fresh environment: the load run's servers must not inherit this run's settings.
        for name in ("CUADRA_RATE_PUBLIC", "CUADRA_WARM_RELEASE"):
            os.environ.pop(name, None)
        load_run(args.load, args.load_seconds, write=not args.no_write)


def scale_run(args: argparse.Namespace) -> None:
    """Ingest and time both scales; print (and write) the "Scale" section."""
    os.environ.setdefault("CUADRA_RATE_PUBLIC", "100000/minute")
    # As in aggregates.py: the timed requests are an analyst's (exact counts). Building the
    # public release of every year in the background (some 50 re-dated years at 10x, 7 at
    # 1x) would compete with them in the 10x server only.
    os.environ["CUADRA_WARM_RELEASE"] = "false"
    # Exact answers (an analyst key): the public sees cells of its release, and a public
    # request without dates is the last whole year, not the whole record.
    work = Path(tempfile.mkdtemp(prefix="cuadra-scale-"))
    write_redated_profile(work)
    results: dict[int, dict[str, object]] = {}
    try:
        for copies in (1, args.copies):
            data = work / f"points-{copies}x.parquet"
            rows = write_copies(data, copies)
            root = work / f"store-{copies}x"
            run(["boundaries", "add", "colonia", str(CDMX / "colonias_iecm.gpkg"), "--id-field",
                 "CVEUT", "--name-field", "NOMUT", "--population-field", "SUMPOB1",
                 "--store", str(root)])  # fmt: skip
            wall, peak = measure([*CUADRA, "ingest", str(data), "--profile", str(work / "profile.toml"),
                                  "--store", str(root), "--engine", args.engine, "--json"])  # fmt: skip
            data.unlink()
            files = sum(1 for _ in (root / "incidents").rglob("*.parquet"))
            key = json.loads(run(["keys", "create", "--role", "analyst", "--store", str(root),
                                  "--json"]))["key"]  # fmt: skip
            first = min(
                int(p.parent.name.split("=")[1]) for p in (root / "incidents").rglob("*.parquet")
            )
            proc, url = serve(root)
            try:
                times = time_questions(url, args.requests, key, first)
            finally:
                proc.terminate()
                proc.wait()
            results[copies] = {
                "rows": rows,
                "wall": wall,
                "peak": peak,
                "files": files,
                "times": times,
            }
            print(copies, rows, f"{wall:.1f} s", f"{peak:.0f} MB", files,
                  {k: round(statistics.median(v), 2) for k, v in times.items()}, flush=True)  # fmt: skip
            shutil.rmtree(root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    one, many = results[1], results[args.copies]
    lines = [
        f"| {c}× | {r['rows']:,} | {r['wall']:.1f} s | {r['peak']:,.0f} MB | {r['files']} | "
        + " | ".join(f"{statistics.median(t):.1f} ms (p90 {pct(t, 90):.1f})" for t in r["times"].values())  # type: ignore[attr-defined]
        + " |"
        for c, r in results.items()
    ]  # fmt: skip
    ratios = (
        f"{args.copies}× over 1×: time {many['wall'] / one['wall']:.1f}× (target ≤ 12×), peak memory "  # type: ignore[operator]
        f"{many['peak'] / one['peak']:.2f}× (target ≤ 2×); /v1/aggregate p50 "  # type: ignore[operator]
        + ", ".join(
            f"{name} {statistics.median(many['times'][name]) / statistics.median(one['times'][name]):.2f}×"  # type: ignore[index]
            for name in QUESTIONS
        )
        + " (target ≤ 1.2×, issue #19)."
    )
    print("\n".join(lines), ratios, sep="\n")
    if not args.no_write:
        replace_section("Scale", [
            f"{date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores. "
            f"`python benchmarks/scale.py --engine {args.engine}`: one `cuadra ingest` process per "
            f"store (colonias only), {args.requests} keep-alive requests per question (analyst key, exact counts; "
            f"by colonia: `{OFFENSE}`; by H3 cell: every offense), once `/health` says the span cubes are built.", "",
            "| scale | records | ingest | peak RSS | data files | " + " | ".join(QUESTIONS) + " |",
            "|---" * (5 + len(QUESTIONS)) + "|", *lines, "", ratios, "",
        ])  # fmt: skip


if __name__ == "__main__":
    main()
