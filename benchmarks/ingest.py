"""Ingest benchmark: Cuadra against the pipeline an analyst writes by hand, as processes.

Both run on the full FGJ file (1.3 M rows) with colonias (IECM), cuadrantes (2023) and the
street file, in the same run, each as a whole process (start-up included), several times.
Prints wall time and peak memory (max RSS of the process) and rewrites the "Ingest" section
of benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/ingest.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from harness import CDMX, CUADRA, POINTS, ROOT, measure
from results import replace_section

HERE = Path(__file__).resolve().parent


def setup_layers(root: Path) -> float:
    started = time.perf_counter()
    for args in (
        ["boundaries", "add", "colonia", str(CDMX / "colonias_iecm.gpkg"), "--id-field", "CVEUT",
         "--name-field", "NOMUT", "--population-field", "SUMPOB1"],
        ["boundaries", "add", "cuadrante", str(CDMX / "cuadrantes_2023.gpkg"), "--id-field", "Nomenclatu"],
        ["streets", "add", "calles", str(CDMX / "streets_geochicas_person_named_2018.geojson"),
         "--name-field", "name", "--id-field", "id"],
    ):  # fmt: skip
        subprocess.run([*CUADRA, *args, "--store", str(root), "--json"], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cuadra-bench-"))
    try:
        template = work / "layers"
        layers_s = setup_layers(template)
        ours: list[tuple[float, float]] = []
        base: list[tuple[float, float]] = []
        for i in range(args.repeat):
            store = work / f"store{i}"
            shutil.copytree(template, store)
            ours.append(measure([*CUADRA, "ingest", str(POINTS), "--profile", "fgj-cdmx",
                                 "--store", str(store), "--json"]))  # fmt: skip
            shutil.rmtree(store)
            base.append(measure([sys.executable, str(HERE / "baseline_ingest.py"), str(CDMX),
                                 str(work / "baseline.parquet")]))  # fmt: skip
            print(f"run {i + 1}: cuadra {ours[-1][0]:.2f} s {ours[-1][1]:.0f} MB | "
                  f"baseline {base[-1][0]:.2f} s {base[-1][1]:.0f} MB", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    o_t = statistics.median(t for t, _ in ours)
    b_t = statistics.median(t for t, _ in base)
    o_m = max(m for _, m in ours)
    b_m = max(m for _, m in base)
    lines = [
        f"| Cuadra `cuadra ingest` (layers already stored) | {o_t:.2f} s | {o_m:.0f} MB |",
        f"| baseline: geopandas by hand (`benchmarks/baseline_ingest.py`) | {b_t:.2f} s | {b_m:.0f} MB |",
        f"| speed-up | {b_t / o_t:.1f}× | |",
        f"| one-time layer set-up (`boundaries add` ×2, `streets add`) | {layers_s:.1f} s | |",
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_results(lines, args.repeat)


def write_results(lines: list[str], repeat: int) -> None:
    replace_section(
        "Ingest",
        [
            f"{date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}; median of {repeat} runs, peak = max RSS; "
            "each figure is a whole process, start-up included. Input: "
            "`fgj_carpetas_2019_2024_points.parquet` (1,302,640 rows) with colonias (IECM), "
            "cuadrantes (2023) and the Geochicas streets. `python benchmarks/ingest.py`.",
            "",
            "| pipeline | wall time | peak memory |",
            "|---|---|---|",
            *lines,
            "",
        ],
    )


if __name__ == "__main__":
    main()
