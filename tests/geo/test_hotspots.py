"""Gi*, FDR and classes against esda/libpysal and a Benjamini-Hochberg reference."""

from __future__ import annotations

import warnings

import h3
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.cells import cells_to_parents, points_to_cells
from geo.hotspots import classify, fdr, gistar, gistar_permutations, h3_weights, queen_weights
from tests.conftest import COLONIAS, POINTS


@pytest.fixture(scope="module")
def robberies() -> tuple[np.ndarray, np.ndarray]:
    """Res-8 cells over Mexico City (zeros included) and 2023 street robberies in each."""
    t = pq.read_table(POINTS, columns=["latitud", "longitud", "delito", "fecha_hecho"])
    keep = pc.and_(
        pc.equal(t["delito"], "ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA"),
        pc.equal(pc.year(pc.cast(t["fecha_hecho"], "timestamp[s]")), 2023),
    )
    t = t.filter(keep)
    lat = t["latitud"].to_numpy(zero_copy_only=False)
    lon = t["longitud"].to_numpy(zero_copy_only=False)
    ok = np.isfinite(lat) & np.isfinite(lon) & (lon > -99.4) & (lon < -98.9)
    occupied = cells_to_parents(points_to_cells(lon[ok], lat[ok]), 8)
    box = h3.LatLngPoly([(19.13, -99.37), (19.13, -98.94), (19.60, -98.94), (19.60, -99.37)])
    universe = np.array(sorted(h3.str_to_int(c) for c in h3.polygon_to_cells(box, 8)), np.uint64)
    universe = np.union1d(universe, occupied)
    counts = np.zeros(universe.size)
    cells, n = np.unique(occupied, return_counts=True)
    counts[np.searchsorted(universe, cells)] = n
    return universe, counts


def test_gistar_equals_esda_on_real_counts(robberies: tuple[np.ndarray, np.ndarray]) -> None:
    from esda.getisord import G_Local
    from libpysal.weights import W

    cells, y = robberies
    assert cells.size > 2_000 and (y == 0).mean() > 0.3 and y.sum() > 5_000
    weights = h3_weights(cells, k=1)
    # The oracle's neighbours come straight from h3-py, without our weights.
    position = {h3.int_to_str(int(c)): i for i, c in enumerate(cells)}
    neighbors = {i: [position[d] for d in h3.grid_disk(c, 1) if d in position and d != c]
                 for c, i in position.items()}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oracle = G_Local(y, W(neighbors, silence_warnings=True), transform="B", star=True,
                         permutations=0)  # fmt: skip
    z, p = gistar(y, weights)
    assert np.max(np.abs(z - oracle.Zs)) < 1e-9
    assert np.allclose(p, 2 * oracle.p_norm, atol=1e-12)
    hot = classify(z, fdr(p))
    assert (hot == "hot_99").sum() > 10 and set(hot) <= {"none", "hot_99", "hot_95", "hot_90",
                                                          "cold_99", "cold_95", "cold_90"}  # fmt: skip


def bh_reference(p: list[float]) -> list[float]:
    """Benjamini-Hochberg by its definition: min over j >= i of p_(j) n / j, capped at 1."""
    n = len(p)
    order = sorted(range(n), key=lambda i: p[i])
    adjusted = [0.0] * n
    running = 1.0
    for rank in range(n, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * n / rank)
        adjusted[i] = running
    return adjusted


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=60))
def test_fdr_is_benjamini_hochberg(p: list[float]) -> None:
    assert np.allclose(fdr(p), bh_reference(p), rtol=1e-12, atol=1e-15)


def test_classes_and_degenerate_inputs() -> None:
    z = np.array([3.0, 2.0, 1.8, 0.5, -2.0, -3.0])
    p = np.array([0.001, 0.04, 0.08, 0.6, 0.03, 0.005])
    assert classify(z, p).tolist() == ["hot_99", "hot_95", "hot_90", "none", "cold_95", "cold_99"]
    cells = np.array([h3.str_to_int(c) for c in h3.grid_disk(h3.latlng_to_cell(19.4, -99.1, 9), 2)],
                     dtype=np.uint64)  # fmt: skip
    z0, p0 = gistar(np.full(cells.size, 4.0), h3_weights(cells))
    assert (z0 == 0).all() and (p0 == 1).all()  # a constant field has no hot spot


def test_permutation_p_agrees_with_esda(robberies: tuple[np.ndarray, np.ndarray]) -> None:
    """Two Monte Carlo runs of the same test differ by noise only.

    The values are densities (robberies per km² of each cell: H3 areas differ, so sums
    rarely tie). Where a neighbourhood is all zeros, draws of zeros tie with it: esda
    counts a tie as extreme on the high side only (such a cell comes out "significantly
    cold"), we on both; those cells are compared by the tie rule below instead.
    """
    from esda.getisord import G_Local
    from libpysal.weights import WSP

    cells, counts = robberies
    y = counts / np.array([h3.cell_area(h3.int_to_str(int(c)), "km^2") for c in cells])
    weights = h3_weights(cells, k=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oracle = G_Local(y, WSP(weights).to_W(silence_warnings=True), transform="B", star=True,
                         permutations=999, seed=11)  # fmt: skip
    ours = gistar_permutations(y, weights, 999, seed=3)
    theirs = np.minimum(1.0, 2 * oracle.p_sim)
    busy = weights @ y > 0
    assert busy.sum() > 1_000
    diff = ours[busy] - theirs[busy]
    # p ~ 0.5 gives a standard error of ~0.03 per run: the mean gap must be that, no bias.
    assert np.abs(diff).mean() < 0.045 and abs(diff.mean()) < 0.01
    # An empty neighbourhood ties with every all-zero draw: with a share q of empty cells
    # and k neighbours, about q^k of the draws; p is twice that share (plus one), capped.
    q = (y == 0).mean()
    k = np.diff(weights.indptr) - 1
    quiet = ~busy & (k == 6)
    expected = np.minimum(1.0, 2 * (q**6 * 999 + 1) / 1000)
    assert abs(np.median(ours[quiet]) - expected) < 0.1
    assert np.array_equal(ours, gistar_permutations(y, weights, 999, seed=3))  # seeded
    assert ((ours >= 2 / 1000) & (ours <= 1)).all()


def test_permutation_p_counts_ties_as_extreme() -> None:
    # Constant values: every draw ties the observed sum, so nothing is significant.
    cells = np.array([h3.str_to_int(c) for c in h3.grid_disk(h3.latlng_to_cell(19.4, -99.1, 8), 3)],
                     dtype=np.uint64)  # fmt: skip
    assert (gistar_permutations(np.full(cells.size, 2.0), h3_weights(cells), 99) == 1).all()


def test_queen_weights_equal_libpysal_on_colonias() -> None:
    import geopandas as gpd
    from libpysal.weights import Queen

    colonias = gpd.read_file(COLONIAS)
    ours = queen_weights(colonias.geometry.to_numpy())
    oracle = Queen.from_dataframe(colonias, use_index=False, silence_warnings=True)
    theirs = {(i, j) for i, js in oracle.neighbors.items() for j in js}
    pairs = {(int(i), int(j)) for i, j in zip(*ours.nonzero(), strict=True) if i != j}
    assert (ours.diagonal() == 1).all() and (ours != ours.T).nnz == 0
    # Shared vertices (libpysal) are a subset of shared points; the rest are polygons that
    # touch without a common vertex or overlap by a sliver: few.
    assert theirs <= pairs
    assert len(pairs - theirs) <= 0.02 * len(theirs)
