"""Lorenz, Gini and shares against their definitions, on generated and hand-made counts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.concentration import concentration, top_share, units_for_share
from geo.errors import GeoError


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 500), min_size=1, max_size=80))
def test_gini_is_the_mean_absolute_difference(counts: list[int]) -> None:
    y = np.array(counts, dtype=float)
    c = concentration(y)
    if y.sum() == 0:
        assert c.gini == 0 and c.units_for_half == 0
        return
    # Definition: sum_i sum_j |y_i - y_j| / (2 n^2 mean).
    expected = np.abs(y[:, None] - y[None, :]).sum() / (2 * y.size**2 * y.mean())
    assert c.gini == pytest.approx(expected, abs=1e-12)
    assert c.lorenz_incidents[0] == 0 and c.lorenz_incidents[-1] == pytest.approx(1)
    assert np.all(np.diff(c.lorenz_incidents) >= -1e-15)
    # The fewest units holding half: brute force over the largest-first prefixes.
    desc = sorted(counts, reverse=True)
    need = next(k for k in range(1, len(desc) + 1) if sum(desc[:k]) * 2 >= sum(desc))
    assert c.units_for_half == need == units_for_share(counts, 0.5)


def test_hand_made_cases() -> None:
    assert concentration([5, 5, 5, 5]).gini == pytest.approx(0)
    one = concentration([0, 0, 0, 12])  # everything in one unit of four
    assert one.gini == pytest.approx(0.75) and one.units_for_half == 1
    assert top_share([10, 30, 60], 1) == pytest.approx(0.6)
    assert top_share([10, 30, 60], 2) == pytest.approx(0.9)
    with pytest.raises(GeoError):
        concentration([])
    with pytest.raises(GeoError):
        concentration([1, -1])
