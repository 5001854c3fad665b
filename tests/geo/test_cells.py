"""H3 indexing against h3-py, the reference implementation."""

from __future__ import annotations

import h3
import numpy as np
import pyarrow.csv as pacsv
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.cells import (
    cells_resolution,
    cells_to_hex,
    cells_to_parents,
    edge_length_m,
    grid_disks,
    points_to_cells,
)
from geo.errors import GeoError
from tests.conftest import SAMPLE_CSV


@pytest.fixture(scope="module")
def sample_points() -> tuple[np.ndarray, np.ndarray]:
    table = pacsv.read_csv(SAMPLE_CSV)
    lon = table.column("longitud").to_numpy()
    lat = table.column("latitud").to_numpy()
    rng = np.random.default_rng(7)
    pick = rng.choice(lon.size, 3000, replace=False)
    return lon[pick], lat[pick]


def test_points_to_cells_equals_h3py(sample_points: tuple[np.ndarray, np.ndarray]) -> None:
    lon, lat = sample_points
    cells = points_to_cells(lon, lat, 15)
    expected = [h3.str_to_int(h3.latlng_to_cell(y, x, 15)) for x, y in zip(lon, lat, strict=True)]
    assert cells.dtype == np.uint64
    assert cells.tolist() == expected


def test_missing_coordinates_give_cell_zero() -> None:
    cells = points_to_cells(np.array([np.nan, -99.1]), np.array([19.4, np.nan]))
    assert cells.tolist() == [0, 0]


def test_resolution_out_of_range_is_refused() -> None:
    with pytest.raises(GeoError, match="0..15, got 16"):
        points_to_cells(np.array([-99.1]), np.array([19.4]), 16)


@settings(max_examples=200, deadline=None)
@given(
    lat=st.floats(-89.9, 89.9),
    lon=st.floats(-179.9, 179.9),
    res=st.integers(0, 14),
)
def test_parents_by_bits_equal_h3py(lat: float, lon: float, res: int) -> None:
    cell = points_to_cells(np.array([lon]), np.array([lat]), 15)
    parent = cells_to_parents(cell, res)
    expected = h3.cell_to_parent(h3.int_to_str(int(cell[0])), res)
    assert cells_to_hex(parent) == [expected]
    assert cells_resolution(parent).tolist() == [res]


def test_every_level_is_the_union_of_its_children(
    sample_points: tuple[np.ndarray, np.ndarray],
) -> None:
    lon, lat = sample_points
    fine = points_to_cells(lon, lat, 15)
    for res in range(5, 13):
        parents = cells_to_parents(fine, res)
        coarser = cells_to_parents(fine, res - 1)
        # The parent of a point's level-res cell is its level-(res-1) cell: counts nest.
        assert np.array_equal(cells_to_parents(parents, res - 1), coarser)


@settings(max_examples=50, deadline=None)
@given(
    lat=st.floats(-85, 85),
    lon=st.floats(-180, 180),
    res=st.integers(0, 12),
    k=st.integers(0, 3),
)
def test_grid_disks_equal_h3py(lat: float, lon: float, res: int, k: int) -> None:
    """Each cell's k-ring, pentagons included, as h3-py lists it."""
    centre = h3.latlng_to_cell(lat, lon, res)
    pentagon = sorted(h3.get_pentagons(res))[0]
    ring = [centre, *h3.grid_ring(centre, 1), pentagon]
    cells = np.array([int(c, 16) for c in ring], np.uint64)
    owner, near = grid_disks(cells, k)
    for i, cell in enumerate(cells.tolist()):
        expected = {int(c, 16) for c in h3.grid_disk(format(cell, "x"), k)}
        assert set(near[owner == i].tolist()) == expected


def test_grid_disks_of_nothing_and_edge_lengths() -> None:
    owner, near = grid_disks(np.zeros(0, np.uint64), 2)
    assert owner.size == near.size == 0
    for res in (5, 9, 11):
        assert edge_length_m(res) == pytest.approx(h3.average_hexagon_edge_length(res, "m"))
