"""The public release of one year: the first pass (the old rule, baseline) against the audit.

    python benchmarks/release.py --store DIR [--year 2024]

For every unit family: its cells; cells withheld by the first pass alone (the release's
rule before the audit) and how many withheld cells with a case a reader could then prove
non-empty; the same after the audit; the build time of the audited table.

First, the release's input: each family's monthly counts of the year read from the year
cubes (what the release reads) against the same counts over the incident files (what it
read before; the baseline), both from this run and checked equal.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

# This folder holds ingest.py, which would shadow the ingest package.
sys.path[:] = [p for p in sys.path if Path(p).resolve() != Path(__file__).resolve().parent]

import duckdb  # noqa: E402

from disclosure.rules import PublicRules  # noqa: E402
from publication import tables  # noqa: E402
from store import Store  # noqa: E402
from store.monthly import monthly_counts  # noqa: E402
from store.snapshot import Snapshot  # noqa: E402


def main() -> int:
    """Build each family's table of a year and print what the audit changed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True)
    parser.add_argument("--year", type=int, default=2024)
    args = parser.parse_args()
    store = Store(args.store)
    snap = store.snapshot()
    manifest = snap.manifest
    con = duckdb.connect()
    until = date(args.year + 1, 2, 1)
    families = [tables.TOTAL, *manifest.boundary_layers, "street", "h3"]
    plain = Snapshot(store, replace(manifest, rollups={},
                                    files=[replace(f, cubes={}) for f in manifest.files]))  # fmt: skip
    print(
        f"{'input':10} {'cubes, read':>12} {'cubes, kept':>12} {'records':>9}  (seconds, best of 3)"
    )
    for fam in families[:-1]:  # H3 cells at h3:9 are finer than the cubes': records both ways
        best: dict[str, float] = {}
        totals = set()
        for _ in range(3):
            for name, source in (("read", snap), ("kept", snap), ("records", plain)):
                if name == "read":
                    store.memo.clear()  # the year cube read from its files again
                started = time.perf_counter()
                got = monthly_counts(source, fam, args.year, tuple(range(1, 13)), 9, con)
                best[name] = min(best.get(name, 1e9), time.perf_counter() - started)
                totals.add(int(got.count.sum()))
        assert len(totals) == 1, f"{fam}: cubes and records disagree"
        print(f"{fam:10} {best['read']:12.3f} {best['kept']:12.3f} {best['records']:9.3f}")
    store.memo.clear()
    print(f"{'family':10} {'cells':>10} {'1st pass':>10} {'provable':>9} {'audited':>10} "
          f"{'provable':>9} {'seconds':>8}")  # fmt: skip
    for fam in families:
        started = time.perf_counter()
        table = tables.published_table(snap, fam, args.year, PublicRules(), con, until, wait=True)
        seconds = time.perf_counter() - started
        a = table.checked
        assert a is not None
        hidden = int(table.hidden.sum())
        print(f"{fam:10} {table.value.size:10,} {hidden - a.covers:10,} {a.first_provable:9,} "
              f"{hidden:10,} {a.unresolved:9,} {seconds:8.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
