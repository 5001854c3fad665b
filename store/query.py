"""The query engine: DuckDB over exactly the files a snapshot names."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from store.snapshots import Manifest
from store.store import Store


@dataclass(frozen=True)
class Summary:
    """Figures about a snapshot for /v1/meta and `cuadra info`."""

    date_min: str | None
    date_max: str | None
    sources: list[str]
    categories: dict[str, int]
    offenses: dict[str, int]


def connect(store: Store, manifest: Manifest) -> duckdb.DuckDBPyConnection:
    """A connection with an ``incidents`` view over the snapshot's files."""
    con = duckdb.connect()
    files = [str(p) for p in store.data_files(manifest)]
    if files:
        # File paths are bound as a parameter list, never spliced into the SQL text.
        rel = con.read_parquet(files)
        rel.create_view("incidents")
    return con


def snapshot_summary(store: Store, manifest: Manifest) -> Summary:
    """Date range, sources, and counts per category and offense."""
    if not manifest.files:
        return Summary(None, None, [], {}, {})
    con = connect(store, manifest)
    try:
        lo, hi = con.execute(
            "SELECT min(local_date), max(local_date) FROM incidents"
        ).fetchone() or (None, None)
        sources = [
            r[0] for r in con.execute("SELECT DISTINCT source FROM incidents ORDER BY 1").fetchall()
        ]
        cats = dict(
            con.execute(
                "SELECT category, count(*) FROM incidents GROUP BY 1 ORDER BY 2 DESC"
            ).fetchall()
        )
        offs = dict(
            con.execute(
                "SELECT offense, count(*) FROM incidents GROUP BY 1 ORDER BY 2 DESC"
            ).fetchall()
        )
    finally:
        con.close()
    return Summary(str(lo) if lo else None, str(hi) if hi else None, sources, cats, offs)
