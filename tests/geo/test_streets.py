"""Nearest street segment against geopandas.sjoin_nearest in UTM 14N."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyarrow.csv as pacsv
import shapely

from geo.streets import SegmentIndex
from ingest.layers import read_streets
from tests.conftest import SAMPLE_CSV, STREETS


def test_hand_made_segment() -> None:
    # An east-west street at lat 19.4; points ~10 m and ~60 m north of it.
    line = shapely.linestrings([[-99.10, 19.40], [-99.09, 19.40]])
    index = SegmentIndex.from_lines(np.array([line], dtype=object), "EPSG:32614", 50.0)
    lat = np.array([19.40 + 10 / 110_760, 19.40 + 60 / 110_760])
    lon = np.array([-99.095, -99.095])
    pos, dist = index.nearest(lon, lat, 50.0)
    assert pos.tolist() == [0, -1]
    assert abs(dist[0] - 10.0) < 0.2


def test_matches_sjoin_nearest() -> None:
    data, _ = read_streets(STREETS, name_field="name")
    index = SegmentIndex.from_lines(np.asarray(data.lines), data.metric_crs, 50.0)
    table = pacsv.read_csv(SAMPLE_CSV)
    lon = table.column("longitud").to_numpy()
    lat = table.column("latitud").to_numpy()
    pos, dist = index.nearest(lon, lat, 50.0)

    lines = gpd.GeoDataFrame(geometry=data.lines, crs="EPSG:4326").to_crs(data.metric_crs)
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")
    joined = gpd.sjoin_nearest(
        points.to_crs(data.metric_crs), lines, max_distance=50, distance_col="d"
    )
    ref = np.full(lon.size, np.nan)
    first = joined[~joined.index.duplicated()]
    ref[first.index.to_numpy()] = first["d"].to_numpy()
    # Same points have a street, at the same distance (ties may pick another segment).
    assert np.array_equal(np.isnan(ref), pos < 0)
    assert np.nanmax(np.abs(ref - dist)) < 1e-6
    tied = joined.groupby(level=0)["index_right"].apply(set)
    for i, candidates in tied.items():
        assert pos[i] in candidates
    assert 0.25 < (pos >= 0).mean() < 0.45  # the partial network: about a third


def test_larger_distance_regrids_the_same_segments() -> None:
    lines = np.array(
        [
            shapely.linestrings([[-99.10, 19.40], [-99.09, 19.40]]),
            shapely.linestrings([[-99.10, 19.41], [-99.09, 19.41]]),
        ],
        dtype=object,
    )
    index = SegmentIndex.from_lines(lines, "EPSG:32614", 50.0)
    lon = np.array([-99.095])
    lat = np.array([19.41 - 60 / 110_760])  # ~60 m south of the second line
    assert index.nearest(lon, lat, 50.0)[0].tolist() == [-1]
    wider = index.with_reach(80.0)
    pos, dist = wider.nearest(lon, lat, 80.0)
    assert pos.tolist() == [1]  # the original line position survives the regridding
    assert abs(dist[0] - 60.0) < 0.5
