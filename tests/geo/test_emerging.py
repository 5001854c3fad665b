"""Emerging hot spots: Mann-Kendall against pymannkendall, each category on a hand-built cube."""

from __future__ import annotations

import h3
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pymannkendall
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.emerging import LABELS, categorize, emerging, mann_kendall, spacetime_weights
from geo.hotspots import h3_weights
from tests.conftest import POINTS

CENTRE = h3.latlng_to_cell(19.4326, -99.1332, 8)  # the Zócalo
CELLS = np.array(sorted(h3.str_to_int(c) for c in h3.grid_disk(CENTRE, 4)), dtype=np.uint64)
CLUSTER = np.isin(CELLS, [h3.str_to_int(c) for c in h3.grid_disk(CENTRE, 1)])
MIDDLE = int(np.flatnonzero(CELLS == h3.str_to_int(CENTRE))[0])
B, H, C = 10, 40, 0  # background, hot and cold counts of a cluster cell in one step


def _cube(pattern: list[int], base: int = B) -> np.ndarray:
    """61 cells × len(pattern) steps: ``base`` everywhere, ``pattern`` on the 7-cell cluster."""
    cube = np.full((CELLS.size, len(pattern)), float(base))
    cube[CLUSTER] = np.array(pattern, dtype=float)
    return cube


# The cluster's counts step by step, and the category the middle cell must get.
CASES = {
    "persistent_hot": ([H] * 10, B),
    "intensifying_hot": ([H + 3 * i for i in range(10)], B),
    "diminishing_hot": ([H + 27 - 3 * i for i in range(10)], B),
    "historical_hot": ([H] * 9 + [B], B),
    "new_hot": ([B] * 9 + [H], B),
    "consecutive_hot": ([B] * 7 + [H] * 3, B),
    "sporadic_hot": ([B, B, H, B, B, H, B, B, B, H], B),
    "oscillating_hot": ([B, B, C, B, B, B, B, B, B, H], B),
    "persistent_cold": ([C] * 10, B),
    "intensifying_cold": ([9 - i for i in range(10)], 20),
    "diminishing_cold": (list(range(10)), 20),
    "historical_cold": ([C] * 9 + [B], B),
    "new_cold": ([B] * 9 + [C], B),
    "consecutive_cold": ([B] * 7 + [C] * 3, B),
    "sporadic_cold": ([B, B, C, B, B, C, B, B, B, C], B),
    "oscillating_cold": ([B, B, H, B, B, B, B, B, B, C], B),
    "no_pattern": ([B] * 10, B),
}


def test_every_category_has_a_case() -> None:
    assert set(CASES) == set(LABELS)


@pytest.mark.parametrize("expected", list(CASES))
def test_category_of_a_hand_built_cube(expected: str) -> None:
    pattern, base = CASES[expected]
    result = emerging(_cube(pattern, base), h3_weights(CELLS), window=0)
    assert result.labels[MIDDLE] == expected
    # Far from the cluster nothing happens.
    far = [h3.str_to_int(c) for c in h3.grid_ring(CENTRE, 4)]
    assert set(result.labels[np.isin(CELLS, far)]) == {"no_pattern"}


def test_window_reaches_back_in_time() -> None:
    # A one-step burst that has ended: with the previous step in the neighbourhood the
    # final step still sees it; without, it does not.
    burst = _cube([B] * 8 + [H, B])
    w = h3_weights(CELLS)
    assert emerging(burst, w, window=0).labels[MIDDLE] == "no_pattern"
    last = emerging(burst, w, window=1)
    assert last.p_fdr[MIDDLE, -1] <= 0.05 and last.z[MIDDLE, -1] > 0


def test_spacetime_weights_look_back_only() -> None:
    spatial = h3_weights(CELLS)
    w = spacetime_weights(spatial, steps=4, window=1).toarray()
    n = CELLS.size
    block = spatial.toarray()
    for t in range(4):
        for u in range(4):
            expected = block if u in (t, t - 1) else 0
            assert (w[t * n : (t + 1) * n, u * n : (u + 1) * n] == expected).all()


def test_categorize_reads_significance_and_sign() -> None:
    z = np.array([[1, 1, 1, 1, 3.0], [-3, 1, 1, 1, 3.0], [3, 3, 3, 3, -1.0]])
    sig = np.array([[0, 0, 0, 0, 1], [1, 0, 0, 0, 1], [1, 1, 1, 1, 0]], dtype=bool)
    labels = categorize(z, sig, [0, 0, 0], [1, 1, 1])
    assert labels.tolist() == ["new_hot", "oscillating_hot", "no_pattern"]


@pytest.fixture(scope="module")
def monthly_series() -> np.ndarray:
    """Monthly counts 2019-2024 of the 40 most frequent offenses (real, with ties)."""
    t = pq.read_table(POINTS, columns=["delito", "fecha_hecho"])
    month = pc.strftime(pc.cast(t["fecha_hecho"], "timestamp[s]"), "%Y-%m")
    grouped = (
        t.append_column("month", month)
        .group_by(["delito", "month"])
        .aggregate([("month", "count")])
    )
    top = pc.unique(grouped.sort_by([("month_count", "descending")])["delito"]).to_pylist()[:40]
    rows = []
    for offense in top:
        g = grouped.filter(pc.equal(grouped["delito"], offense)).sort_by("month")
        rows.append(g["month_count"].to_numpy()[-72:])
    n = min(len(r) for r in rows)
    return np.array([r[-n:] for r in rows], dtype=float)


def test_mann_kendall_equals_pymannkendall_on_real_series(monthly_series: np.ndarray) -> None:
    ours = mann_kendall(monthly_series)
    for i, row in enumerate(monthly_series):
        ref = pymannkendall.original_test(row)
        assert ours.s[i] == ref.s
        assert ours.z[i] == pytest.approx(ref.z, abs=1e-12)
        assert ours.p[i] == pytest.approx(ref.p, abs=1e-12)
        assert ours.tau[i] == pytest.approx(ref.Tau, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=3, max_size=40))
def test_mann_kendall_with_ties_equals_pymannkendall(values: list[int]) -> None:
    ref = pymannkendall.original_test(np.array(values, dtype=float))
    ours = mann_kendall(values)
    assert ours.s[0] == ref.s and ours.p[0] == pytest.approx(ref.p, abs=1e-12)
