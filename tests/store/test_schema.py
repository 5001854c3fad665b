"""The on-disk format: WKB points, GeoParquet 1.1 validity, readers other than ours."""

from __future__ import annotations

import duckdb
import geopandas as gpd
import geoparquet_validator as gpv
import numpy as np
import shapely
from hypothesis import given
from hypothesis import strategies as st

from ingest.pipeline import ingest
from ingest.profiles import load_profile
from store import Store
from store.schema import points_to_wkb
from tests.conftest import SAMPLE_CSV

finite = st.floats(allow_nan=False, allow_infinity=False)


@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=50))
def test_points_to_wkb_equals_shapely(xy: list[tuple[float, float]]) -> None:
    arr = np.array(xy, dtype=np.float64)
    ours = points_to_wkb(arr[:, 0], arr[:, 1]).to_pylist()
    ref = shapely.to_wkb(shapely.points(arr), byte_order=1).tolist()
    assert ours == ref


def test_written_files_are_valid_geoparquet_for_other_readers(layers_store: Store) -> None:
    report = ingest(layers_store, [str(SAMPLE_CSV)], load_profile("fgj-cdmx"))
    manifest = layers_store.require_manifest()
    files = layers_store.data_files(manifest)
    assert sum(f.rows for f in manifest.files) == report.accepted == 50_000
    for path in files[:2]:
        # The GeoParquet community validator (1.1 rules, covering, WKB decoding).
        result = gpv.check(str(path))
        assert gpv.conformant(result, "core"), gpv.failed(result)
        failed = [o for o in result["outcomes"] if o["status"] == "fail"]
        assert not failed, failed
        # (GDAL is not an oracle here: the GDAL inside pyogrio's wheels has no Parquet
        # driver, only ADBC, which needs a libduckdb.so that no package ships.)
        # geopandas reads geometry that matches lon/lat.
        frame = gpd.read_parquet(path)
        assert frame.crs.to_string() == "OGC:CRS84"  # WGS84, lon/lat order
        assert np.array_equal(frame.geometry.x, frame["lon"])
        assert np.array_equal(frame.geometry.y, frame["lat"])
    # DuckDB reads exactly the snapshot's files, hive-partitioned or not.
    con = duckdb.connect()
    count = con.execute(
        "SELECT count(*) FROM read_parquet($files)", {"files": [str(p) for p in files]}
    ).fetchall()
    assert count == [(50_000,)]


def test_rows_sorted_by_h3_within_each_file(layers_store: Store) -> None:
    ingest(layers_store, [str(SAMPLE_CSV)], load_profile("fgj-cdmx"))
    for path in layers_store.data_files(layers_store.require_manifest()):
        cells = gpd.read_parquet(path, columns=["h3", "geometry"])["h3"].to_numpy()
        assert np.all(cells[1:] >= cells[:-1])
