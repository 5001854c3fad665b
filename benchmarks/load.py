"""Load test: concurrent public users and analysts against `cuadra serve` on 127.0.0.1.

Builds a store with the FGJ records and colonias/cuadrantes (or reuses --store), starts
the server as its own process, runs locust headless for --seconds (at most 60) with
--users users, and reports requests, 429s, failures, p50 and p99 per request type. The
run fails if anything but the intended 429s went wrong. Writes the "Load" section of
benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/load.py [--users 40] [--seconds 45] [--store DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from harness import CDMX, CUADRA, POINTS, run, serve, wait_for_release
from results import replace_section

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def build(root: Path) -> None:
    run(["boundaries", "add", "colonia", str(CDMX / "colonias_iecm.gpkg"), "--id-field", "CVEUT",
         "--name-field", "NOMUT", "--population-field", "SUMPOB1", "--store", str(root)])  # fmt: skip
    run(["boundaries", "add", "cuadrante", str(CDMX / "cuadrantes_2023.gpkg"),
         "--id-field", "Nomenclatu", "--store", str(root)])  # fmt: skip
    run(["ingest", str(POINTS), "--profile", "fgj-cdmx", "--store", str(root)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--seconds", type=int, default=45)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--public-rate", default="1200/minute")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 60:
        raise SystemExit("--seconds must be 1..60")
    work = Path(tempfile.mkdtemp(prefix="cuadra-load-"))
    try:
        root = args.store or work / "store"
        if args.store is None:
            build(root)
        made = subprocess.run([*CUADRA, "keys", "create", "--role", "analyst", "--note", "load test",
                               "--store", str(root), "--json"], cwd=ROOT, check=True,
                              capture_output=True, text=True)  # fmt: skip
        key = json.loads(made.stdout)["key"]
        # One address sends every public request here: a limit that a crowd on one
        # machine reaches within the run, so that the 429 path is exercised too.
        os.environ["CUADRA_RATE_PUBLIC"] = args.public_rate
        proc, url = serve(root)
        try:
            # A deployment routes traffic once /health says the release is built.
            print(f"public release built in {wait_for_release(url):.1f} s")
            env = {**os.environ, "CUADRA_LOAD_KEY": key}
            prefix = work / "stats"
            subprocess.run([sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"),
                            "--headless", "-u", str(args.users), "-r", str(max(1, args.users // 5)),
                            "-t", f"{args.seconds}s", "--host", url, "--csv", str(prefix),
                            "--only-summary"], cwd=ROOT, env=env, check=False,
                           capture_output=True)  # fmt: skip
        finally:
            proc.terminate()
            proc.wait()
        lines, failed = summarize(prefix)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for line in lines:
        print(line)
    if not args.no_write:
        replace_section("Load", [
            f"{date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores; locust "
            f"headless, {args.users} users (4 public : 1 analyst), {args.seconds} s, public limit "
            f"{args.public_rate} (all public users share 127.0.0.1); server and load generator "
            "on the same machine. `python benchmarks/load.py`.", "",
            "| request | requests | failures | p50 | p99 |", "|---|---|---|---|---|", *lines, "",
        ])  # fmt: skip
    if failed:
        raise SystemExit(f"{failed} requests failed")


def summarize(prefix: Path) -> tuple[list[str], int]:
    lines, failed = [], 0
    with open(f"{prefix}_stats.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            name = row["Name"]
            failures = int(row["Failure Count"])
            if name != "Aggregated":
                failed += failures
            lines.append(f"| {name} | {int(row['Request Count']):,} | {failures} | "
                         f"{row['50%']} ms | {row['99%']} ms |")  # fmt: skip
    return lines, failed


if __name__ == "__main__":
    main()
