"""The release's audit against an exact attacker: scipy's linear programming (HiGHS).

Hand-written tables whose answer is plain to see, and random ones for the soundness of
the interval bounds: no value consistent with everything published may fall outside them.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from disclosure.audit import Relations, audit, priors, propagate
from disclosure.suppression import suppress_members


def relations(groups: list[list[tuple[int, int]]], slack: list[int] | None = None) -> Relations:
    """Relations from lists of (cell, coefficient)."""
    rel = [r for r, g in enumerate(groups) for _ in g]
    cell = [c for g in groups for c, _ in g]
    coef = [a for g in groups for _, a in g]
    return Relations(np.array(rel, np.int64), np.array(cell, np.int64),
                     np.array(coef, np.int64), np.array(slack or [0] * len(groups), np.int64))  # fmt: skip


def lp_range(
    values: np.ndarray, ks: np.ndarray, hidden: np.ndarray, rel: Relations, j: int
) -> tuple[float, float]:
    """The exact smallest and largest value of withheld cell ``j`` a reader can infer."""
    var = -np.ones(values.size, dtype=np.int64)
    var[hidden] = np.arange(int(hidden.sum()))
    a = np.zeros((rel.count, int(hidden.sum())))
    b = np.zeros(rel.count)
    for r, c, coef in zip(rel.rel, rel.cell, rel.coef, strict=True):
        if hidden[c]:
            a[r, var[c]] += coef
        else:
            b[r] -= coef * values[c]
    lo, hi = priors(values, ks, hidden)
    bounds = [(lo[c], None if np.isinf(hi[c]) else hi[c]) for c in np.flatnonzero(hidden)]
    cost = np.zeros(int(hidden.sum()))
    cost[var[j]] = 1
    low = linprog(cost, A_eq=a, b_eq=b, bounds=bounds, method="highs")
    high = linprog(-cost, A_eq=a, b_eq=b, bounds=bounds, method="highs")
    assert low.status == 0 and high.status == 0
    return low.fun, -high.fun


def test_a_cell_proven_empty_is_no_cover() -> None:
    # Cells: P=13 (sum), a=3, b=10, z=0 | Q=7 (sum), w=7.  a + b + z = P; z + w = Q.
    values = np.array([13, 3, 10, 0, 7, 7], dtype=np.int64)
    ks = np.full(values.size, 5)
    rel = relations([[(1, 1), (2, 1), (3, 1), (0, -1)], [(3, 1), (5, 1), (4, -1)]])
    plus = rel.coef > 0
    first = suppress_members(values, ks, rel.rel[plus], rel.cell[plus], rel.slack)
    assert first.tolist() == [False, True, False, True, False, False]  # z taken as cover
    assert lp_range(values, ks, first, rel, 1) == (3, 3)  # ... and the attacker pins a = 3
    checked = audit(values, ks, first, rel)
    assert checked.unresolved == 0 and checked.covers >= 1
    low, high = lp_range(values, ks, checked.hidden, rel, 1)
    assert low == 0 and high >= 3


def test_two_withheld_quarters_that_sum_near_their_maximum() -> None:
    # Colonia 07-030 of the issue: Q1 + Q2 = 17, each below k = 10, so each is 8 or 9.
    year, q1, q2, q3, q4 = 40, 8, 9, 11, 12
    values = np.array([year, q1, q2, q3, q4], dtype=np.int64)
    ks = np.full(values.size, 10)
    rel = relations([[(1, 1), (2, 1), (3, 1), (4, 1), (0, -1)]])
    first = values < ks
    assert lp_range(values, ks, first, rel, 1) == (8, 9)
    checked = audit(values, ks, first, rel)
    assert checked.unresolved == 0
    for j in (1, 2):
        assert lp_range(values, ks, checked.hidden, rel, j)[0] == 0
    assert not checked.hidden[0]  # the smallest part that makes up for it, not the year
    assert checked.hidden[3] and not checked.hidden[4]


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.integers(0, 14), min_size=3, max_size=3).flatmap(
        lambda widths: st.tuples(
            st.just(widths), st.lists(st.integers(0, 14), min_size=9, max_size=9)
        )
    ),
    k=st.integers(3, 6),
)
def test_interval_bounds_never_exclude_a_consistent_value(
    data: tuple[list[int], list[int]], k: int
) -> None:
    # A 3 x 3 table with row, column and grand totals: 16 cells, 7 relations.
    _, inner = data
    grid = np.array(inner, dtype=np.int64).reshape(3, 3)
    values = np.concatenate([grid.ravel(), grid.sum(axis=1), grid.sum(axis=0), [grid.sum()]])
    cell = np.arange(9).reshape(3, 3)
    groups = [[(int(c), 1) for c in cell[i]] + [(9 + i, -1)] for i in range(3)]
    groups += [[(int(c), 1) for c in cell[:, j]] + [(12 + j, -1)] for j in range(3)]
    groups.append([(9, 1), (10, 1), (11, 1), (15, -1)])
    rel = relations(groups)
    ks = np.full(values.size, k)
    hidden = values < k
    lo, hi = priors(values, ks, hidden)
    lo, hi = propagate(lo, hi, rel, np.zeros(rel.count))
    assert (lo <= values).all() and (values <= hi).all()
    for j in np.flatnonzero(hidden):
        low, high = lp_range(values, ks, hidden, rel, int(j))
        assert lo[j] <= low + 1e-6 and high <= hi[j] + 1e-6 or np.isinf(hi[j])
    checked = audit(values, ks, hidden, rel)
    assert (checked.hidden >= hidden).all()  # the audit only ever withholds more
    protected = checked.hidden & (values >= 1) & (values < k)
    narrow = protected & (checked.lo > 0)
    assert int(narrow.sum()) == checked.unresolved  # what it could not mend, it reports
