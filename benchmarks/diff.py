"""What changed between two releases of the whole FGJ file: our diff against a full comparison.

    python benchmarks/diff.py --store DIR [--work DIR]

DIR holds the FGJ points file ingested (``make demo``'s store). A copy of it gets a
revised release through ``ingest --replace``: the same file with 5,000 seeded records
reclassified to another offense and 2,000 deleted. Printed: the replacing ingest's time,
then, best of 3, ``store.diff`` by colonia (reasons per unit, offense and month) and the
baseline, a GROUP BY of every record of both snapshots by the same cells (net change only),
with a check that both give the same net per cell.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p).resolve() != Path(__file__).resolve().parent]

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from ingest.pipeline import ingest  # noqa: E402
from ingest.profiles import load_profile  # noqa: E402
from store import Store  # noqa: E402
from store.aggregate import Unit  # noqa: E402
from store.diff import diff  # noqa: E402
from store.filters import Filters  # noqa: E402

POINTS = (
    Path(__file__).resolve().parents[2] / "shared/data/cdmx/fgj_carpetas_2019_2024_points.parquet"
)
RECLASSIFIED, DELETED = 5_000, 2_000


def revised_release(path: Path) -> None:
    """The points file with seeded reclassifications and deletions, written to ``path``."""
    table = pq.read_table(POINTS)
    rng = np.random.default_rng(7)
    picked = rng.choice(table.num_rows, RECLASSIFIED + DELETED, replace=False)
    offense = table.column("delito").to_pylist()
    names = sorted({o for o in offense if o})
    for i in picked[:RECLASSIFIED]:
        offense[i] = next(n for n in names if n != offense[i])
    table = table.set_column(
        table.schema.get_field_index("delito"), "delito", pa.array(offense, pa.large_string())
    )
    keep = np.ones(table.num_rows, bool)
    keep[picked[RECLASSIFIED:]] = False
    pq.write_table(table.filter(pa.array(keep)), path)


def baseline(store: Store, before: int, after: int) -> dict[tuple, int]:
    """Net change per (colonia, offense, month) from every record of both snapshots."""
    con = duckdb.connect()
    net: dict[tuple, int] = {}
    for sign, seq in ((-1, before), (1, after)):
        files = [str(p) for p in store.data_files(store.require_manifest(seq))]
        rows = con.execute(
            "SELECT colonia::VARCHAR, offense::VARCHAR, date_trunc('month', local_date)::DATE, "
            "count(*) FROM read_parquet(?) GROUP BY ALL",
            [files],
        ).fetchall()
        for u, o, m, n in rows:
            net[(u, o, m)] = net.get((u, o, m), 0) + sign * n
    return {k: v for k, v in net.items() if v}


def main() -> int:
    """Replace the release in a copy of the store and time the diff both ways."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True)
    parser.add_argument("--work", default=None, help="Scratch folder (default: a temporary one).")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="cuadra-diff-"))
    root = work / "store"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(args.store, root)
    store = Store(root)
    before = store.require_manifest().snapshot
    revised = work / "revised.parquet"
    revised_release(revised)
    started = time.perf_counter()
    report = ingest(store, [str(revised)], load_profile("fgj-cdmx"), replace=True)
    print(f"ingest --replace of {report.input_rows:,} rows: {time.perf_counter() - started:.1f} s")
    after = report.snapshot
    assert after is not None
    ours, base = [], []
    for _ in range(3):
        con = duckdb.connect()
        t0 = time.perf_counter()
        result = diff(store.snapshot(before), store.snapshot(after),
                      Unit("layer", layer="colonia"), Filters(), con)  # fmt: skip
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        expected = baseline(store, before, after)
        base.append(time.perf_counter() - t0)
    rows = result.rows.filter(pc.not_equal(result.rows.column("net"), 0)).to_pylist()
    got = {(r["unit_id"], r["offense"], r["month"]): r["net"] for r in rows}
    print(f"totals: {result.totals}; {result.files_read} files read")
    print(f"diff by colonia (reasons):     {min(ours):.2f} s")
    print(f"baseline GROUP BY both (net):  {min(base):.2f} s")
    print(f"same net per cell: {got == expected} ({len(expected):,} cells moved)")
    return 0 if got == expected else 1


if __name__ == "__main__":
    raise SystemExit(main())
