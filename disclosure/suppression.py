"""Threshold and complementary suppression: the first pass of the release's decision.

Every count below ``k`` is withheld (zeros too); then, in every group of cells whose sum
is public elsewhere, the smallest shown cell is withheld too while the group is at risk.
This pass is fast and catches the common cases; :mod:`disclosure.audit` then checks the
result against an attacker and withholds more where it does not hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from geo.arrays import ranges

Indices = npt.NDArray[np.intp]


@dataclass(frozen=True)
class Group:
    """Cells whose sum can be known elsewhere (a total, a parent cell, a month).

    ``unlisted`` counts the units that belong to the group without being listed (units
    with no incident).
    """

    cells: Indices
    unlisted: int = 0


def suppress(
    values: Sequence[int] | npt.NDArray[np.int64], k: int, groups: Sequence[Group]
) -> npt.NDArray[np.bool_]:
    """Cells to withhold: every count below ``k`` (zeros too), and complements.

    Withheld cells look alike whatever their count, zero included, so a reader knows of
    each only that it is in ``[0, k)``, unless it is a complement. In a group whose sum is
    public elsewhere, the withheld cells' sum R is known; they are pinned down when there
    is one of them (with R > 0), or when R reaches its maximum (every one at ``k - 1``).
    Then the smallest shown cell of the group is withheld too, until every group holds.
    """
    v = np.asarray(values, dtype=np.int64)
    if not groups:
        return v < k
    member_group = np.concatenate(
        [np.full(g.cells.size, i, dtype=np.int64) for i, g in enumerate(groups)]
    )
    member_cell = np.concatenate([g.cells for g in groups]).astype(np.int64)
    unlisted = np.array([g.unlisted for g in groups], dtype=np.int64)
    return suppress_members(v, np.full(v.size, k), member_group, member_cell, unlisted)


def suppress_members(
    values: npt.NDArray[np.int64],
    ks: npt.NDArray[np.int64],
    member_group: npt.NDArray[np.int64],
    member_cell: npt.NDArray[np.int64],
    unlisted: npt.NDArray[np.int64],
) -> npt.NDArray[np.bool_]:
    """The rule of :func:`suppress` over many groups at once, each cell with its own k.

    Group ``g`` holds the cells ``member_cell[member_group == g]`` and ``unlisted[g]``
    more that are not listed (zeros). The members of a group share one threshold (a
    group never mixes sensitive and other counts), read off its first member. Every pass
    withholds, in each group still at risk, its smallest shown cell; passes repeat until
    no group is at risk or none has a shown cell left.
    """
    v = values.astype(np.int64, copy=False)
    hidden = v < ks
    n_groups = unlisted.size
    if member_cell.size == 0:
        return hidden
    group_k = np.zeros(n_groups, dtype=np.int64)
    group_k[member_group[::-1]] = ks[member_cell[::-1]]  # the first member's k wins
    # Members by group, and by cell: a pass looks only at the groups that changed.
    order = np.argsort(member_group, kind="stable")
    by_group = member_cell[order]
    group_of = member_group[order]
    g_ptr = np.concatenate([[0], np.cumsum(np.bincount(group_of, minlength=n_groups))])
    by_cell = np.argsort(by_group, kind="stable")
    c_ptr = np.concatenate([[0], np.cumsum(np.bincount(by_group, minlength=v.size))])
    active = np.arange(n_groups)
    while active.size:
        lengths = g_ptr[active + 1] - g_ptr[active]
        cells = by_group[ranges(g_ptr[active], lengths)]
        local = np.repeat(np.arange(active.size), lengths)
        hm = hidden[cells]
        mv = v[cells]
        kk = group_k[active]
        total = np.bincount(local, weights=np.where(hm, mv, 0), minlength=active.size)
        m = np.bincount(local, weights=hm, minlength=active.size) + unlisted[active]
        complement = np.bincount(local, weights=hm & (mv >= kk[local]), minlength=active.size)
        risk = (total > 0) & ((m < 2) | ((complement == 0) & (total >= m * (kk - 1))))
        candidate = risk[local] & ~hm & (mv > 0)
        if not candidate.any():
            break
        g = local[candidate]
        c = cells[candidate]
        pick = np.lexsort((c, v[c], g))
        g, c = g[pick], c[pick]
        first = np.ones(g.size, dtype=bool)
        first[1:] = g[1:] != g[:-1]
        new = np.unique(c[first])
        hidden[new] = True
        # Only groups holding a newly withheld cell can have come to be at risk.
        touched = by_cell[ranges(c_ptr[new], c_ptr[new + 1] - c_ptr[new])]
        active = np.unique(group_of[touched])
    return hidden
