"""Two real releases of a source, the second a revision of the first, and what changed.

Release 1 is a seeded sample of the FGJ file without part of its last month (cases that
were reported late); release 2 is the same sample with those cases, a set of real records
reclassified to another real offense, and a set deleted. ``cuadra ingest --replace`` makes
release 2 the source's records; the diff is checked against a DuckDB comparison of every
record of the two snapshots (not only the files one side holds), and its reasons against
what the simulation did.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from store import Store
from store.aggregate import Unit
from store.diff import diff
from store.filters import FilterError, Filters
from tests.conftest import DELETED, RECLASSIFIED, SAMPLE_CSV, SSP_CSV, ingest_two_releases


@dataclass(frozen=True)
class Releases:
    store: Store
    first: int
    second: int
    late: int  # records release 2 adds (late cases of the last month)


@pytest.fixture(scope="module")
def fgj(layers_store_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Releases:
    import shutil

    tmp = tmp_path_factory.mktemp("releases")
    shutil.copytree(layers_store_template, tmp / "store")
    store = Store(tmp / "store")
    columns = ("fecha_hecho", "delito", "latitud")
    first, second, late = ingest_two_releases(store, tmp, SAMPLE_CSV, 4000, columns, "fgj-cdmx")
    return Releases(store, first, second, late)


def _oracle(store: Store, before: int, after: int, unit_sql: str) -> dict[tuple, int]:
    """Net change per (unit, offense, month): every record of both snapshots, counted.

    ``unit_sql`` may call ``parent8(h3)``: the record's res-8 parent by h3-py.
    """
    import h3

    con = duckdb.connect()
    con.create_function(
        "parent8", lambda c: h3.cell_to_parent(h3.int_to_str(c), 8), ["UBIGINT"], "VARCHAR"
    )
    net: dict[tuple, int] = {}
    for sign, seq in ((-1, before), (1, after)):
        files = [str(p) for p in store.data_files(store.require_manifest(seq))]
        rows = con.execute(
            f"SELECT {unit_sql}::VARCHAR, offense::VARCHAR, date_trunc('month', local_date)::DATE,"
            " count(*) FROM read_parquet(?) GROUP BY ALL",
            [files],
        ).fetchall()
        for u, o, m, n in rows:
            net[(u, o, m)] = net.get((u, o, m), 0) + sign * n
    return {k: v for k, v in net.items() if v}


def _run(r: Releases, unit: str = "colonia", flt: Filters | None = None):  # noqa: ANN202
    before, after = r.store.snapshot(r.first), r.store.snapshot(r.second)
    with duckdb.connect() as con:
        return diff(before, after, Unit.parse(unit, after.manifest), flt or Filters(), con)


def test_replace_makes_the_release_the_sources_records(fgj: Releases) -> None:
    before = fgj.store.require_manifest(fgj.first)
    after = fgj.store.require_manifest(fgj.second)
    assert after.rows == before.rows + fgj.late - DELETED
    (batch,) = (b for b in after.batches.values() if b.replaced)
    assert batch.replaced == sorted(before.batches)
    assert set(after.batches) == {batch.batch}
    assert after.operation == "replace fgj-cdmx"
    # The first release stays readable as it was.
    assert fgj.store.read(before, ["incident_id"]).num_rows == before.rows


def test_diff_matches_a_duckdb_comparison_of_every_record(fgj: Releases) -> None:
    for unit, unit_sql in (("colonia", "colonia"), ("h3:8", "parent8(h3)")):
        result = _run(fgj, unit)
        got = {
            (r["unit_id"], r["offense"], r["month"]): r["net"]
            for r in result.rows.to_pylist()
            if r["net"]
        }
        assert got == _oracle(fgj.store, fgj.first, fgj.second, unit_sql)
        assert result.totals["net"] == fgj.late - DELETED


def test_reasons_say_what_the_release_did(fgj: Releases) -> None:
    totals = _run(fgj).totals
    assert totals["new"] == fgj.late
    assert totals["deleted"] == DELETED
    # FGJ has no ids (a hash of the row): a reclassified record is found at its place and time.
    assert totals["revised_in"] == totals["revised_out"] == RECLASSIFIED
    assert totals["added"] - totals["removed"] == totals["net"]


def test_largest_moves_and_names(fgj: Releases) -> None:
    result = _run(fgj)
    top = result.largest(5)
    assert len(top) == 5
    assert abs(top[0]["net"]) >= abs(top[-1]["net"])
    named = [r for r in result.rows.to_pylist() if r["unit_id"] is not None]
    assert named and all(r["name"] for r in named)


def test_filters_select_cells_and_keep_reclassified_ones(fgj: Releases) -> None:
    whole = _run(fgj)
    moved_out = [r for r in whole.rows.to_pylist() if r["revised_out"]]
    offense = moved_out[0]["offense"]
    only = _run(fgj, flt=Filters(offenses=(offense,)))
    assert {r["offense"] for r in only.rows.to_pylist()} == {offense}
    assert only.totals["revised_out"] == sum(
        r["revised_out"] for r in whole.rows.to_pylist() if r["offense"] == offense
    )
    with pytest.raises(FilterError) as err:
        _run(fgj, flt=Filters(hour_from=22, hour_to=6))
    assert err.value.param == "hour_from"


def test_the_same_snapshot_has_no_diff(fgj: Releases) -> None:
    store = fgj.store
    snap = store.snapshot(fgj.second)
    with duckdb.connect() as con:
        result = diff(snap, snap, Unit.parse("colonia", snap.manifest), Filters(), con)
    assert result.rows.num_rows == 0 and result.files_read == 0


def test_sources_with_ids_pair_revisions_by_id(layers_store_template: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(layers_store_template, tmp_path / "store")
    store = Store(tmp_path / "store")
    columns = ("date", "crime", "lat")
    first, second, late = ingest_two_releases(store, tmp_path, SSP_CSV, 3000, columns, "ssp-cdmx")
    before, after = store.snapshot(first), store.snapshot(second)
    with duckdb.connect() as con:
        result = diff(before, after, Unit.parse("cuadrante", after.manifest), Filters(), con)
    assert result.totals["new"] == late
    assert result.totals["deleted"] == DELETED
    assert result.totals["revised_in"] == RECLASSIFIED
    got = {(r["unit_id"], r["offense"], r["month"]): r["net"] for r in result.rows.to_pylist()}
    assert {k: v for k, v in got.items() if v} == _oracle(store, first, second, "cuadrante")
