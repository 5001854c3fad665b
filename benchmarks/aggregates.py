"""API benchmark: /v1/aggregate over HTTP against DuckDB over the source file, 1× and 10×.

Question: robberies of pedestrians with violence in 2023, by colonia; and first asks: on a
server asked nothing yet, the ten most frequent offenses of 2023 by colonia, each asked three
times in turn (the first round's times beside the repeated rounds'). Cuadra answers it
over HTTP (uvicorn on 127.0.0.1) from its store; the baseline is DuckDB in-process over
the source Parquet file, grouping by the file's own colonia name. Then the store grows to
10× the records (ten copies of the real file, re-dated 7 years apart, ingested one by
one) and the same query is timed again. Prints p50/p90 and rewrites the "API" section of
benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/aggregates.py [--requests 60] [--copies 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb
import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from harness import CDMX, POINTS, get_when_ready, pct, run, serve, write_redated_profile
from results import replace_section

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OFFENSE = "ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA"
PARAMS = {"unit": "colonia", "start": "2023-01-01", "end": "2024-01-01", "offense": OFFENSE}


def build_store(root: Path, copies: int, work: Path) -> None:
    run(["boundaries", "add", "colonia", str(CDMX / "colonias_iecm.gpkg"), "--id-field", "CVEUT",
         "--name-field", "NOMUT", "--population-field", "SUMPOB1", "--store", str(root)])  # fmt: skip
    source = pq.read_table(POINTS)
    source = source.set_column(
        source.column_names.index("fecha_hecho"),
        "fecha_hecho",
        pc.cast(source["fecha_hecho"], pa.string()),
    )
    for k in range(copies):
        path = POINTS if k == 0 else work / f"copy{k}.parquet"
        if k:
            # Re-date k * 7 years earlier (the record spans six): same places, new dates.
            years = pc.subtract(
                pc.cast(pc.utf8_slice_codeunits(source["fecha_hecho"], 0, 4), pa.int32()), 7 * k
            )
            fecha = pc.binary_join_element_wise(
                pc.cast(years, pa.string()),
                pc.utf8_slice_codeunits(source["fecha_hecho"], 4, 100),
                "",
            )
            pq.write_table(
                source.set_column(source.column_names.index("fecha_hecho"), "fecha_hecho", fecha),
                path,
            )
        run(
            [
                "ingest",
                str(path),
                "--profile",
                str(work / "profile.toml"),
                "--store",
                str(root),
                "--json",
            ]
        )


def time_http(url: str, n: int, key: str | None = None) -> list[float]:
    out = []
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=url, timeout=60, headers=headers) as client:
        get_when_ready(client, "/v1/aggregate", PARAMS)  # warm: the public table is built
        for _ in range(n):
            t0 = time.perf_counter()
            client.get("/v1/aggregate", params=PARAMS).raise_for_status()
            out.append((time.perf_counter() - t0) * 1000)
    return out


def ten_offenses() -> list[str]:
    """The ten most frequent offenses of 2023 in the source file."""
    rows = duckdb.sql(
        "SELECT delito FROM read_parquet(?) WHERE fecha_hecho >= '2023-01-01' AND "
        "fecha_hecho < '2024-01-01' GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 10",
        params=[str(POINTS)],
    ).fetchall()
    return [r[0] for r in rows]


def time_first_asks(url: str, key: str, offenses: list[str]) -> tuple[list[float], list[float]]:
    """Ten offenses by colonia for 2023, each asked three times in turn, on a server that
    was asked nothing yet: milliseconds of the first asks, and of the repeated ones."""
    first: list[float] = []
    again: list[float] = []
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, timeout=60, headers=headers) as client:
        for _ in range(600):  # what a deployment waits for: the snapshot prepared
            if client.get("/health").json()["cubes"] in ("ready", "failed"):
                break
            time.sleep(0.2)
        for turn in range(3):
            for offense in offenses:
                t0 = time.perf_counter()
                client.get(
                    "/v1/aggregate", params={**PARAMS, "offense": offense}
                ).raise_for_status()
                (again if turn else first).append((time.perf_counter() - t0) * 1000)
    return first, again


def time_duckdb_offenses(offenses: list[str]) -> list[float]:
    """DuckDB over the source file, the same thirty questions (it keeps no answers)."""
    con = duckdb.connect()
    sql = ("SELECT colonia, count(*) FROM read_parquet(?) WHERE fecha_hecho >= '2023-01-01' "
           "AND fecha_hecho < '2024-01-01' AND delito = ? GROUP BY 1")  # fmt: skip
    out = []
    for _ in range(3):
        for offense in offenses:
            t0 = time.perf_counter()
            con.execute(sql, [str(POINTS), offense]).fetchall()
            out.append((time.perf_counter() - t0) * 1000)
    return out


def time_duckdb(n: int) -> list[float]:
    con = duckdb.connect()
    sql = ("SELECT colonia, count(*) FROM read_parquet(?) WHERE fecha_hecho >= '2023-01-01' "
           "AND fecha_hecho < '2024-01-01' AND delito = ? GROUP BY 1")  # fmt: skip
    con.execute(sql, [str(POINTS), OFFENSE]).fetchall()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        con.execute(sql, [str(POINTS), OFFENSE]).fetchall()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    # Latency is measured here, not the rate limit (benchmarks/load.py does that).
    os.environ.setdefault("CUADRA_RATE_PUBLIC", "100000/minute")
    # The public release of the asked year is built by the warm-up request; building every
    # year of the 10x store in the background would compete with the timed requests.
    os.environ["CUADRA_WARM_RELEASE"] = "false"
    work = Path(tempfile.mkdtemp(prefix="cuadra-api-bench-"))
    write_redated_profile(work)
    lines = []
    try:
        duck = time_duckdb(args.requests)
        offenses = ten_offenses()
        duck_offenses = time_duckdb_offenses(offenses)
        for copies in (1, args.copies):
            root = work / f"store{copies}"
            t0 = time.perf_counter()
            build_store(root, copies, work)
            built = time.perf_counter() - t0
            key = json.loads(run(["keys", "create", "--role", "analyst", "--store", str(root),
                                  "--json"]))["key"]  # fmt: skip
            proc, url = serve(root)
            try:
                first, again = time_first_asks(url, key, offenses)
                exact = time_http(url, args.requests, key)
                public = time_http(url, args.requests)
            finally:
                proc.terminate()
                proc.wait()
            rows = sum(
                pq.read_metadata(f).num_rows for f in (root / "incidents").rglob("*.parquet")
            )
            for who, ours in (("analyst key: exact counts", exact),
                              ("public: cells of the release", public)):  # fmt: skip
                lines.append(f"| Cuadra over HTTP, {who}, store of {rows:,} records ({copies}×) | "
                             f"{statistics.median(ours):.1f} ms | {pct(ours, 90):.1f} ms |")  # fmt: skip
                print(lines[-1], f"(store built in {built:.0f} s)", flush=True)
            for what, ours in (("first ask", first), ("asked again", again)):
                lines.append(f"| Cuadra over HTTP, analyst key, ten offenses, {what} ({copies}×) | "
                             f"{statistics.median(ours):.1f} ms | {pct(ours, 90):.1f} ms |")  # fmt: skip
                print(
                    lines[-1],
                    f"{statistics.median(ours) / statistics.median(duck_offenses):.2f}× DuckDB",
                )
            shutil.rmtree(root)
        lines.insert(
            0,
            f"| DuckDB in-process over the source file | {statistics.median(duck):.1f} ms | {pct(duck, 90):.1f} ms |",
        )
        lines.insert(
            1,
            f"| DuckDB in-process over the source file, the ten offenses (three times each) | "
            f"{statistics.median(duck_offenses):.1f} ms | {pct(duck_offenses, 90):.1f} ms |",
        )
        print(lines[0])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not args.no_write:
        write_results(lines, args.requests)


def write_results(lines: list[str], n: int) -> None:
    replace_section(
        "API",
        [
            f"{date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores; {n} sequential requests "
            f"after one warm-up. Question: `{OFFENSE}` in 2023 by colonia. `python benchmarks/aggregates.py`.",
            "",
            "| what | p50 | p90 |",
            "|---|---|---|",
            *lines,
            "",
        ],
    )


if __name__ == "__main__":
    main()
