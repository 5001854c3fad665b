"""The query engine: DuckDB over exactly the files a snapshot names."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from store.snapshot import Kind, Snapshot

# Figures about a snapshot and its offenses: one entry per snapshot and source scope.
SUMMARIES = Kind("summaries", items=64)
OFFENSES = Kind("offense triples", items=8)


@dataclass(frozen=True)
class Summary:
    """Figures about a snapshot for /v1/meta and `cuadra info`."""

    date_min: str | None
    date_max: str | None
    sources: list[str]
    categories: dict[str, int]
    offenses: dict[str, int]


def connect(snap: Snapshot) -> duckdb.DuckDBPyConnection:
    """A connection with an ``incidents`` view over the snapshot's files."""
    con = duckdb.connect()
    files = [str(p) for p in snap.store.data_files(snap.manifest)]
    if files:
        # File paths are bound as a parameter list, never spliced into the SQL text.
        rel = con.read_parquet(files)
        rel.create_view("incidents")
    return con


def snapshot_summary(snap: Snapshot, sources: tuple[str, ...] = ()) -> Summary:
    """Date range, sources, and counts per category and offense (of ``sources`` only).

    Snapshots never change, so each one is read once per process (/v1/meta is the page's
    first call and must stay fast under load).
    """
    return snap.memo(SUMMARIES, tuple(sources), lambda: _summary(snap, tuple(sources)))


def _summary(snap: Snapshot, sources: tuple[str, ...]) -> Summary:
    if not snap.manifest.files:
        return Summary(None, None, [], {}, {})
    where, params = "TRUE", []
    if sources:
        where = f"source IN ({', '.join('?' * len(sources))})"
        params = list(sources)
    con = connect(snap)
    try:
        lo, hi = con.execute(
            f"SELECT min(local_date), max(local_date) FROM incidents WHERE {where}", params
        ).fetchone() or (None, None)
        found = [
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT source FROM incidents WHERE {where} ORDER BY 1", params
            ).fetchall()
        ]
        cats = dict(
            con.execute(
                f"SELECT category, count(*) FROM incidents WHERE {where} GROUP BY 1 ORDER BY 2 DESC, 1",
                params,
            ).fetchall()
        )
        offs = dict(
            con.execute(
                f"SELECT offense, count(*) FROM incidents WHERE {where} GROUP BY 1 ORDER BY 2 DESC, 1",
                params,
            ).fetchall()
        )
    finally:
        con.close()
    return Summary(str(lo) if lo else None, str(hi) if hi else None, found, cats, offs)


def offense_triples(snap: Snapshot) -> tuple[tuple[str, str, bool], ...]:
    """The snapshot's distinct (offense, category, sensitive) triples, read once per snapshot."""
    files = tuple(str(p) for p in snap.store.data_files(snap.manifest))
    return snap.memo(OFFENSES, (), lambda: _triples(files))


def published_offense_triples(snap: Snapshot) -> tuple[tuple[str, str, bool], ...]:
    """The triples of the snapshot and of every file an earlier snapshot held and it does not.

    The public release reads each month from the snapshot of its publication day, so an
    offense a later release dropped (``ingest --replace``: all its records reclassified or
    deleted) is still counted there. A snapshot's own triple wins over an older one.
    """

    def build() -> tuple[tuple[str, str, bool], ...]:
        current = {f.path for f in snap.manifest.files}
        dropped: set[str] = set()
        for seq in snap.store.snapshots():
            if seq >= snap.id:
                break
            older = snap.store.require_manifest(seq)
            dropped.update(f.path for f in older.files if f.path not in current)
        merged = {
            o: (o, c, s) for o, c, s in _triples(tuple(str(snap.path(p)) for p in sorted(dropped)))
        }
        merged.update({o: (o, c, s) for o, c, s in offense_triples(snap)})
        return tuple(sorted(merged.values()))

    return snap.memo(OFFENSES, "published", build)


def _triples(files: tuple[str, ...]) -> tuple[tuple[str, str, bool], ...]:
    if not files:
        return ()
    con = duckdb.connect()
    try:
        rows = con.execute(
            "SELECT DISTINCT offense, category, coalesce(sensitive, false) FROM read_parquet(?)",
            [list(files)],
        ).fetchall()
    finally:
        con.close()
    return tuple((str(o), str(c), bool(f)) for o, c, f in rows)


EXTENTS = Kind("record extents", items=8)


def records_extent(snap: Snapshot) -> tuple[float, float, float, float] | None:
    """West, south, east, north of the snapshot's records (None without records).

    Of 99.8 % of them (quantiles 0.001 and 0.999 of each axis): a few records filed far
    from the rest must not make a map open over a whole country.
    """

    def extent() -> tuple[float, float, float, float] | None:
        files = [str(p) for p in snap.store.data_files(snap.manifest)]
        if not files:
            return None
        con = duckdb.connect()
        try:
            row = con.execute(
                "SELECT quantile_cont(lon, 0.001), quantile_cont(lat, 0.001), "
                "quantile_cont(lon, 0.999), quantile_cont(lat, 0.999) FROM read_parquet(?)",
                [files],
            ).fetchone()
        finally:
            con.close()
        if row is None or row[0] is None:
            return None
        return float(row[0]), float(row[1]), float(row[2]), float(row[3])

    return snap.memo(EXTENTS, (), extent)
