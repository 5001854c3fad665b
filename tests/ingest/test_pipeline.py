"""End to end: real files into a store with colonias, cuadrantes and streets."""

from __future__ import annotations

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.layers import read_boundaries
from ingest.pipeline import ingest
from ingest.prepare import _first_occurrences
from ingest.profiles import load_profile
from store import Store
from tests.conftest import COLONIAS, POINTS, SAMPLE_CSV


def check_enrichment(store: Store, n: int, seed: int) -> None:
    """h3 against h3-py and colonia against geopandas.sjoin on a random sample of rows."""
    table = store.read(store.require_manifest(), ["lon", "lat", "h3", "colonia", "street_id"])
    rng = np.random.default_rng(seed)
    rows = table.take(pa.array(rng.choice(table.num_rows, n, replace=False))).to_pylist()
    for r in rows:
        assert r["h3"] == h3.str_to_int(h3.latlng_to_cell(r["lat"], r["lon"], 15))
    data, _ = read_boundaries(COLONIAS, id_field="CVEUT")
    colonias = gpd.GeoDataFrame({"cid": data.ids}, geometry=data.polygons, crs="EPSG:4326")
    points = gpd.GeoDataFrame(
        {"ours": [r["colonia"] for r in rows]},
        geometry=gpd.points_from_xy([r["lon"] for r in rows], [r["lat"] for r in rows]),
        crs="EPSG:4326",
    )
    joined = gpd.sjoin(points, colonias, predicate="within", how="left")
    for i, group in joined.groupby(level=0):
        ref = set(group["cid"].dropna())
        ours = group["ours"].iloc[0]
        assert (ours in ref) if ref else pd.isna(ours), (i, ours, ref)
    assert table.column("street_id").null_count < table.num_rows  # some points are on streets


def test_sample_into_layers(layers_store: Store) -> None:
    report = ingest(layers_store, [str(SAMPLE_CSV)], load_profile("fgj-cdmx"))
    assert report.balanced() and report.accepted == 50_000
    assert report.assigned["colonia"] > 49_800 and report.assigned["cuadrante"] > 49_700
    assert 14_000 < report.assigned["street_id"] < 20_000  # ~34 % within 50 m (data README)
    check_enrichment(layers_store, 2_000, seed=1)


@pytest.mark.slow
def test_full_fgj_file(layers_store: Store) -> None:
    report = ingest(layers_store, [str(POINTS)], load_profile("fgj-cdmx"))
    assert report.input_rows == 1_302_640
    assert report.duplicates == 343  # the file's exact duplicates
    assert report.rejected == {"outside_jurisdiction": 1}  # the point at longitude -100.23
    assert report.input_rows == report.accepted + report.rejected_total + report.duplicates
    # 38,079 rows carry "06:30:00:00"-style hours; one of them is an exact duplicate.
    assert report.repairs == {"time_from_date_field": 38_078}
    check_enrichment(layers_store, 20_000, seed=2)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 30), max_size=200))
def test_first_occurrences_keep_exactly_one_of_each_id(codes: list[int]) -> None:
    # Ids sharing a 64-bit key but differing as text (a collision) must both be kept.
    ids = pa.array([f"id{c}" for c in codes], pa.string())
    key = np.array([c // 2 for c in codes], dtype=np.uint64)
    got = _first_occurrences(ids, key)
    want = pl.Series("id", ids).is_first_distinct().to_numpy()
    assert got.tolist() == want.tolist()
