"""Point-in-polygon assignment against geopandas.sjoin(predicate="within")."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyarrow.csv as pacsv
import pytest
import shapely

from geo.cells import points_to_cells
from geo.polygons import PolygonIndex, points_within, polygons_to_cell_table
from ingest.layers import read_boundaries
from tests.conftest import COLONIAS, SAMPLE_CSV


def test_hand_made_squares() -> None:
    # Two unit squares side by side; the shared edge x = 0 belongs to neither.
    west = shapely.box(-99.02, 19.40, -99.00, 19.42)
    east = shapely.box(-99.00, 19.40, -98.98, 19.42)
    polygons = np.array([west, east], dtype=object)
    index = PolygonIndex(polygons, polygons_to_cell_table(polygons, res=9))
    lon = np.array([-99.01, -98.99, -99.00, -98.90])
    lat = np.array([19.41, 19.41, 19.41, 19.41])
    assigned = index.assign(lon, lat, points_to_cells(lon, lat))
    assert assigned.tolist() == [0, 1, -1, -1]


@pytest.fixture(scope="module")
def colonias() -> gpd.GeoDataFrame:
    data, _ = read_boundaries(COLONIAS, id_field="CVEUT")
    return gpd.GeoDataFrame({"id": data.ids}, geometry=data.polygons, crs="EPSG:4326")


def test_cell_table_matches_sjoin_within(colonias: gpd.GeoDataFrame) -> None:
    table = pacsv.read_csv(SAMPLE_CSV)
    lon = table.column("longitud").to_numpy()
    lat = table.column("latitud").to_numpy()
    polygons = np.asarray(colonias.geometry.values, dtype=object)
    index = PolygonIndex(polygons, polygons_to_cell_table(polygons))
    ours = index.assign(lon, lat, points_to_cells(lon, lat))

    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")
    joined = gpd.sjoin(points, colonias, predicate="within", how="left")
    matches = joined.groupby(level=0)["index_right"].apply(lambda s: set(s.dropna().astype(int)))
    # Overlapping IECM polygons give sjoin several matches: ours must be one of them
    # (the lowest position); a point in no polygon must be unassigned.
    for i, ref in matches.items():
        if ref:
            assert ours[i] == min(ref), (i, ours[i], ref)
        else:
            assert ours[i] == -1, (i, ours[i])
    assert (ours >= 0).mean() > 0.99
    # The table path and the plain STRtree path agree everywhere.
    assert np.array_equal(ours, points_within(polygons, lon, lat))
