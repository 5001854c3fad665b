"""Cubes: exactly the counts of their incident files, and used only where they answer."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from geo.types import BBox
from ingest.layers import add_boundary_file
from ingest.pipeline import ingest
from ingest.profiles import load_profile
from store import Store
from store.aggregate import Unit, _plan, aggregate, compare_periods, timeseries
from store.cubes import _count_dense, _count_sorted, _distinct, h3_parent
from store.filters import Filters
from store.snapshot import Snapshot
from store.snapshots import Manifest
from tests.conftest import CDMX, COLONIAS

OFFENSE = "ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA"


def without_cubes(manifest: Manifest) -> Manifest:
    """The same snapshot as a store written before cubes existed would describe it."""
    return replace(manifest, files=[replace(f, cubes={}) for f in manifest.files])


def test_every_file_has_cubes_that_count_it_exactly(sample_store: Store) -> None:
    manifest = sample_store.require_manifest()
    con = duckdb.connect()
    for f in manifest.files:
        assert set(f.cubes) == {"colonia", "cuadrante", "street", "h3"}
        data = str(sample_store.root / f.path)
        for family, rel in f.cubes.items():
            cube = str(sample_store.root / rel)
            unit = {"h3": "h3", "street": "street_id"}.get(family, family)
            key = "cell" if family == "h3" else "unit"
            source = "read_parquet(?)"
            if family == "h3":
                # Independent parent: h3-py's, per distinct cell of the data file, joined in.
                import h3

                cells = pq.read_table(data, columns=["h3"]).column("h3").to_numpy()
                distinct = np.unique(cells)
                parents = pa.table({
                    "oracle_cell": pa.array(distinct, pa.uint64()),
                    "oracle_parent": pa.array([h3.str_to_int(h3.cell_to_parent(h3.int_to_str(int(c)), 8))
                                               for c in distinct], pa.uint64()),
                })  # fmt: skip
                assert all(int(p) == q for p, q in zip(h3_parent(distinct, 8),
                           parents.column("oracle_parent").to_pylist(), strict=True))  # fmt: skip
                con.register("oracle_parents", parents)
                source = "read_parquet(?) LEFT JOIN oracle_parents ON oracle_cell = h3"
                unit = "oracle_parent"
            expected = con.sql(
                f"SELECT offense, date_trunc('month', local_date)::DATE, source, category, "
                f"sensitive, {unit}, count(*) FROM {source} GROUP BY ALL ORDER BY ALL",
                params=[data],
            ).fetchall()
            got = con.sql(
                f"SELECT offense, month, source, category, sensitive, {key}, n "
                f"FROM read_parquet(?)",
                params=[cube],
            ).fetchall()
            if family != "h3":
                # Layer units are positions in the layer version's feature list.
                layer = manifest.street_layer if family == "street" else family
                ids = sample_store.layer_ids(manifest, layer).to_pylist()
                got = [(*r[:5], None if r[5] is None else ids[r[5]], r[6]) for r in got]
            got.sort(key=lambda r: tuple((v is None, v) for v in r))
            expected.sort(key=lambda r: tuple((v is None, v) for v in r))
            assert got == expected, family
            offenses = pq.read_table(cube, columns=["offense"]).column("offense").to_pylist()
            assert offenses == sorted(offenses)  # what lets row-group statistics prune


CUBE_FILTERS = [
    Filters(),
    Filters(start=date(2023, 1, 1), end=date(2024, 1, 1), offenses=(OFFENSE,)),
    Filters(start=date(2021, 3, 1), categories=("robo_transeunte", "homicidio_doloso")),
    Filters(end=date(2020, 7, 1), within=("colonia", "15-044")),
]
INCIDENT_FILTERS = [
    Filters(start=date(2023, 1, 2), end=date(2024, 1, 1)),
    Filters(hour_from=22, hour_to=6),
    Filters(weekdays=(5, 6)),
    Filters(bbox=BBox(-99.20, 19.38, -99.12, 19.45)),
    Filters(within=("cuadrante", "C-1.2.10")),
]


@pytest.mark.parametrize("unit_text", ["colonia", "cuadrante", "street", "h3:5", "h3:8"])
def test_cubes_answer_exactly_what_the_incidents_answer(
    sample_store: Store, unit_text: str
) -> None:
    manifest = sample_store.require_manifest()
    plain = without_cubes(manifest)
    unit = Unit.parse(unit_text, manifest)
    for flt in CUBE_FILTERS:
        if flt.within and unit.layer != flt.within[0]:
            continue
        assert _plan(Snapshot(sample_store, manifest), unit, flt, (flt.start, flt.end)).cube
        assert not _plan(Snapshot(sample_store, plain), unit, flt, (flt.start, flt.end)).cube
        fast = aggregate(Snapshot(sample_store, manifest), unit, flt)
        slow = aggregate(Snapshot(sample_store, plain), unit, flt)
        assert fast.table.equals(slow.table)
        assert (fast.total, fast.unassigned) == (slow.total, slow.unassigned)
        assert fast.total > 0
        months = timeseries(Snapshot(sample_store, manifest), "month", flt)
        assert months.equals(timeseries(Snapshot(sample_store, plain), "month", flt))
    a, b = (date(2022, 1, 1), date(2023, 1, 1)), (date(2023, 1, 1), date(2024, 7, 1))
    fast_cmp = compare_periods(Snapshot(sample_store, manifest), unit, Filters(), a, b)
    slow_cmp = compare_periods(Snapshot(sample_store, plain), unit, Filters(), a, b)
    assert fast_cmp.sort_by("unit_id").equals(slow_cmp.sort_by("unit_id"))


@pytest.mark.parametrize("flt", INCIDENT_FILTERS)
def test_finer_questions_read_the_incidents(sample_store: Store, flt: Filters) -> None:
    manifest = sample_store.require_manifest()
    unit = Unit.parse("colonia", manifest)
    assert not _plan(Snapshot(sample_store, manifest), unit, flt, (flt.start, flt.end)).cube
    fine = Unit.parse("h3:9", manifest)  # finer than the H3 cube
    assert not _plan(Snapshot(sample_store, manifest), fine, Filters(), (None, None)).cube


def test_a_new_layer_gets_cubes_and_batches_add_up(layers_store: Store, tmp_path: Path) -> None:
    # Two batches from two sources (SSP 2013–2016, FGJ sample 2019–2024), then a layer
    # added afterwards: cubes are rebuilt from the store's files and sum across batches.
    ingest(layers_store, [str(CDMX / "ssp_crime_lat_long_2013_2016.csv.gz")],
           load_profile("ssp-cdmx"))  # fmt: skip
    ingest(layers_store, [str(CDMX / "fgj_carpetas_sample_50k.csv.gz")], load_profile("fgj-cdmx"))
    add_boundary_file(layers_store, "alcaldia", COLONIAS, id_field="NOMDT", dissolve=True)
    manifest = layers_store.require_manifest()
    assert all("alcaldia" in f.cubes for f in manifest.files)
    assert len({f.year for f in manifest.files}) >= 9
    unit = Unit.parse("alcaldia", manifest)
    for flt in (Filters(), Filters(sources=("ssp-cdmx",)), Filters(start=date(2016, 1, 1))):
        fast = aggregate(Snapshot(layers_store, manifest), unit, flt)
        slow = aggregate(Snapshot(layers_store, without_cubes(manifest)), unit, flt)
        assert fast.table.equals(slow.table) and fast.total == slow.total > 0
    # vacuum keeps every cube a snapshot names, and drops cubes no snapshot names.
    stray = layers_store.root / "cubes" / "alcaldia" / "year=2019" / "part-dead.parquet"
    stray.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(layers_store.root / manifest.files[0].cubes["alcaldia"], stray)
    assert layers_store.vacuum() == [stray]
    assert aggregate(Snapshot(layers_store, manifest), unit, Filters()).total == manifest.rows


@settings(max_examples=200, deadline=None)
@given(arrays(np.int64, st.integers(0, 300), elements=st.integers(0, 5000)))
def test_key_counting_equals_numpy_unique(key: np.ndarray) -> None:
    want_keys, want_counts = np.unique(key, return_counts=True)
    for keys, counts in (_count_dense(key, 5001), _count_sorted(key)):
        assert keys.tolist() == want_keys.tolist()
        assert counts.tolist() == want_counts.tolist()


@settings(max_examples=200, deadline=None)
@given(arrays(np.uint64, st.integers(0, 300), elements=st.integers(0, 50)), st.booleans())
def test_distinct_equals_numpy_unique(values: np.ndarray, presorted: bool) -> None:
    if presorted:
        values = np.sort(values)  # the one-pass path
    distinct, inverse = _distinct(values)
    want, want_inverse = np.unique(values, return_inverse=True)
    assert distinct.tolist() == want.tolist()
    assert inverse.tolist() == want_inverse.tolist()


def test_bounds_past_the_data_still_read_cubes(sample_store: Store) -> None:
    # Mid-month bounds that exclude nothing (an open-ended query, or the public delay cut
    # after the last record) are dropped: the cubes answer, and exactly.
    manifest = sample_store.require_manifest()
    unit = Unit("layer", layer="colonia")
    wide = Filters(start=date(1990, 3, 17), end=date(2031, 5, 17))
    assert _plan(Snapshot(sample_store, manifest), unit, wide, (wide.start, wide.end)).cube
    everything = aggregate(Snapshot(sample_store, manifest), unit, Filters())
    assert aggregate(Snapshot(sample_store, manifest), unit, wide).table.equals(everything.table)
    # A mid-month bound inside the data still needs the records, and still counts right.
    inside = Filters(end=date(2023, 5, 17))
    assert not _plan(Snapshot(sample_store, manifest), unit, inside, (None, inside.end)).cube
    cut = aggregate(Snapshot(sample_store, without_cubes(manifest)), unit, inside)
    assert aggregate(Snapshot(sample_store, manifest), unit, inside).table.equals(cut.table)


def test_rollups_count_what_the_files_cubes_count(
    layers_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two ingests: each snapshot's rollup is its parent's plus the new cubes, and
    # answers exactly as every file's cubes do. (Rollups wait for 16 files; not here.)
    monkeypatch.setattr("store.store.ROLLUP_MIN_FILES", 0)
    profile = load_profile("fgj-cdmx")
    ingest(layers_store, [str(CDMX / "fgj_carpetas_sample_50k.csv.gz")], profile)
    first = layers_store.require_manifest()
    assert set(first.rollups) == {f + "@year" for f in first.files[0].cubes}
    # A second source, another batch: the rollup grows by its cubes.
    ingest(
        layers_store, [str(CDMX / "ssp_crime_lat_long_2013_2016.csv.gz")], load_profile("ssp-cdmx")
    )
    second = layers_store.require_manifest()
    assert second.rows > first.rows
    assert second.rollups["colonia@year"] != first.rollups["colonia@year"]
    plain = replace(second, rollups={})
    for unit in (Unit("layer", layer="colonia"), Unit("h3", res=7), Unit("street", layer="calles")):
        for flt in (Filters(), Filters(start=date(2015, 1, 1), end=date(2023, 7, 1)),
                    Filters(offenses=("ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA",)),
                    Filters(sources=("ssp-cdmx",))):  # fmt: skip
            family = unit.cube_family or ""
            got = aggregate(Snapshot(layers_store, second), unit, flt)
            assert got.table.equals(aggregate(Snapshot(layers_store, plain), unit, flt).table), (
                unit,
                flt,
            )
            # The span cube built from the rollup, against the incident files themselves.
            scan = aggregate(Snapshot(layers_store, without_cubes(second)), unit, flt)
            assert got.table.equals(scan.table) and got.total == scan.total, (unit, flt)
        # Whole years read the year rollup; monthly series still the month one.
        years = Filters(start=date(2016, 1, 1), end=date(2024, 1, 1))
        plan = _plan(
            Snapshot(layers_store, second), unit, years, (years.start, years.end), years=True
        )
        assert plan.files == [str(layers_store.root / second.rollups[family + "@year"])]
        got = aggregate(Snapshot(layers_store, second), unit, years)
        assert got.table.equals(aggregate(Snapshot(layers_store, plain), unit, years).table)
    monthly = timeseries(Snapshot(layers_store, second), "month", Filters(start=date(2016, 1, 1)))
    assert monthly.equals(
        timeseries(Snapshot(layers_store, plain), "month", Filters(start=date(2016, 1, 1)))
    )
    a, b = (date(2016, 1, 1), date(2017, 1, 1)), (date(2023, 1, 1), date(2024, 1, 1))
    for unit in (Unit("layer", layer="colonia"), Unit("h3", res=6)):
        got_c = compare_periods(Snapshot(layers_store, second), unit, Filters(), a, b).sort_by(
            "unit_id"
        )
        assert got_c.equals(
            compare_periods(Snapshot(layers_store, plain), unit, Filters(), a, b).sort_by("unit_id")
        )
    kept = {layers_store.root / r for r in (*first.rollups.values(), *second.rollups.values())}
    assert not kept & set(layers_store.vacuum(dry_run=True))


MONTH = st.integers(2017 * 12, 2026 * 12)


@settings(max_examples=40, deadline=None)
@given(
    start=st.none() | MONTH,
    months=st.none() | st.integers(1, 100),
    offense=st.sampled_from([None, OFFENSE, "VIOLENCIA FAMILIAR"]),
    unit_text=st.sampled_from(["colonia", "h3:7", "h3:8", "street"]),
)
def test_any_month_window_from_span_and_year_cubes_equals_the_incidents(
    sample_store: Store, start: int | None, months: int | None, offense: str | None, unit_text: str
) -> None:
    """Whole years from the span cube, the months at either end from year cubes: the
    counts of the incident files themselves, for any month-aligned window (open or not)."""
    first = date(start // 12, start % 12 + 1, 1) if start is not None else None
    last = None
    if months is not None:
        m = (start if start is not None else 2019 * 12) + months
        last = date(m // 12, m % 12 + 1, 1)
    flt = Filters(start=first, end=last, offenses=(offense,) if offense else ())
    manifest = sample_store.require_manifest()
    unit = Unit.parse(unit_text, manifest)
    fast = aggregate(Snapshot(sample_store, manifest), unit, flt)
    slow = aggregate(Snapshot(sample_store, without_cubes(manifest)), unit, flt)
    assert fast.table.equals(slow.table)
    assert (fast.total, fast.unassigned) == (slow.total, slow.unassigned)


def test_span_cubes_keep_h3_cells_exact(sample_store: Store) -> None:
    """The whole record by h3:8 (the span cube alone): the cells h3-py gives each record."""
    import h3

    manifest = sample_store.require_manifest()
    got = aggregate(Snapshot(sample_store, manifest), Unit.parse("h3:8", manifest), Filters())
    cells = sample_store.read(manifest, ["h3"]).column("h3").to_numpy()
    distinct, n = np.unique(cells, return_counts=True)
    want: dict[str, int] = {}
    for cell, count in zip(distinct.tolist(), n.tolist(), strict=True):
        parent = h3.cell_to_parent(h3.int_to_str(cell), 8)
        want[parent] = want.get(parent, 0) + count
    assert dict(zip(got.table.column("unit_id").to_pylist(),
                    got.table.column("count").to_pylist(), strict=True)) == want  # fmt: skip
