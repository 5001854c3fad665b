"""The release's input: monthly counts from the cubes equal a count over the incident records."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import duckdb
import pytest

from store import Store
from store.monthly import MonthlyCounts, monthly_counts
from store.snapshot import Snapshot
from store.sql import quote

Key = tuple[object, int, str]


def _as_counter(c: MonthlyCounts) -> Counter[Key]:
    out: Counter[Key] = Counter()
    units = c.units.tolist() if not isinstance(c.units, list) else c.units
    for u, m, o, n in zip(units, c.month.tolist(), c.offense.tolist(), c.count.tolist(),
                          strict=True):  # fmt: skip
        out[(u, m, c.offense_names[o])] += n
    return out


def _records(store: Store, column: str | None, year: int, months: tuple[int, ...]) -> Counter[Key]:
    """The oracle: a GROUP BY over the incident files themselves."""
    snap = store.snapshot()
    files = [str(snap.path(f.path)) for f in snap.manifest.files]
    unit = "''" if column is None else f"{quote(column)}::VARCHAR"
    rows = duckdb.sql(
        f"SELECT {unit}, month(local_date), offense, count(*) FROM read_parquet(?) "
        "WHERE year(local_date) = ? AND list_contains(?, month(local_date)) GROUP BY ALL",
        params=[files, year, list(months)],
    ).fetchall()
    return Counter({(u, int(m), str(o)): int(n) for u, m, o, n in rows})


@pytest.mark.parametrize(
    ("family", "column"),
    [("colonia", "colonia"), ("cuadrante", "cuadrante"), ("street", "street_id"), ("total", None)],
)
def test_cube_counts_equal_the_records(
    sample_store: Store, family: str, column: str | None
) -> None:
    snap = sample_store.snapshot()
    months = (1, 2, 3, 7, 12)
    con = duckdb.connect()
    try:
        got = monthly_counts(snap, family, 2023, months, 9, con)
    finally:
        con.close()
    expected = _records(sample_store, column, 2023, months)
    assert sum(expected.values()) > 1000
    assert _as_counter(got) == expected
    # Read from the cubes, not the records: a snapshot without cubes takes the other path
    # and still agrees.
    files = [replace(f, cubes={}) for f in snap.manifest.files]
    plain = Snapshot(sample_store, replace(snap.manifest, files=files, rollups={}))
    con = duckdb.connect()
    try:
        assert _as_counter(monthly_counts(plain, family, 2023, months, 9, con)) == expected
    finally:
        con.close()
