"""The attacker's check: what every published figure tells about each withheld cell.

A reader of the public release knows every shown count, every relation between cells (a
family's units sum to the whole area, H3 children to their parent, months to their quarter,
offenses to their category), that counts are whole numbers, and, at worst, which withheld
cells are below the threshold (in ``[0, k-1]``).
Interval propagation over those relations, to a fixpoint, gives the range of values each
withheld cell can still take (Fischetti and Salazar's audit of a suppression pattern,
bounded by intervals instead of one linear programme per cell).

The rule this audit enforces: **every withheld cell holding 1 to k-1 cases keeps its whole
range [0, k-1]**. Where a cell's range is narrower, a relation that narrowed it gets one more
withheld cell, and the check runs again, until it holds. A cell proven empty by another
relation is pinned at 0 by the propagation, so it never counts as cover.

The reader assumed here knows which withheld cells are below the threshold (in
``[0, k-1]``) and takes every other withheld cell, the cover, to be anywhere in
``[0, ∞)``: a reader who also knew which cells are cover would know each to be at least
k, and two parts below k of a withheld sum would then be known to hold a case between
them, which no amount of suppression inside a two-part group can hide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from geo.arrays import ranges

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
INF = np.inf
_EPS = 1e-6


@dataclass(frozen=True)
class Relations:
    """Sums a reader knows hold: for each relation r, ``sum(coef * x) + slack_r = 0``.

    Members are (relation, cell, coefficient ±1): parts on the + side, the cell they sum
    to on the - side. ``slack[r]`` counts a relation's unlisted parts: cells with no case
    that are absent from the table (a colonia without incidents), each withheld and so,
    to a reader, somewhere in ``[0, k-1]``.
    """

    rel: Ints
    cell: Ints
    coef: Ints
    slack: Ints

    @property
    def count(self) -> int:
        """How many relations."""
        return int(self.slack.size)


@dataclass(frozen=True)
class Audit:
    """A withholding decision that passed the check, and what a reader can tell."""

    hidden: Bools
    lo: Floats  # each cell's smallest value consistent with everything published
    hi: Floats
    rounds: int  # checks run (1: the first decision already held)
    covers: int  # cells withheld by the audit beyond the first decision
    unresolved: int  # cells whose range stayed narrow (0 when the rule holds)
    first_provable: int = 0  # such cells before the audit's covers (the first pass alone)


def priors(values: Ints, ks: Ints, hidden: Bools) -> tuple[Floats, Floats]:
    """A reader's bounds before any relation: shown exact, below-k in [0, k-1], cover >= 0."""
    v = values.astype(np.float64)
    primary = values < ks
    lo = np.where(hidden, 0.0, v)
    hi = np.where(hidden, np.where(primary, ks - 1.0, INF), v)
    return lo, hi


def _implied(
    rel: Ints, coef: Ints, lo_m: Floats, hi_m: Floats, slack_hi: Floats, n_rel: int
) -> tuple[Floats, Floats]:
    """Each member's bounds implied by its relation and the other members' bounds."""
    plus = coef > 0
    own_min = np.where(plus, lo_m, -hi_m)
    own_max = np.where(plus, hi_m, -lo_m)
    min_inf = np.isinf(own_min)
    max_inf = np.isinf(own_max)
    fmin = np.where(min_inf, 0.0, own_min)
    fmax = np.where(max_inf, 0.0, own_max)
    smin = np.bincount(rel, weights=fmin, minlength=n_rel)
    smax = np.bincount(rel, weights=fmax, minlength=n_rel) + slack_hi
    nmin = np.bincount(rel, weights=min_inf, minlength=n_rel)
    nmax = np.bincount(rel, weights=max_inf, minlength=n_rel)
    others_min = np.where(nmin[rel] - min_inf > 0.5, -INF, smin[rel] - fmin)
    others_max = np.where(nmax[rel] - max_inf > 0.5, INF, smax[rel] - fmax)
    # coef +1: x = -(others + slack); coef -1: x = others + slack.
    low = np.where(plus, -others_max, others_min)
    high = np.where(plus, -others_min, others_max)
    return low, high


def propagate(
    lo: Floats, hi: Floats, relations: Relations, slack_hi: Floats, max_sweeps: int = 500
) -> tuple[Floats, Floats]:
    """Tighten the bounds over every relation until nothing changes (whole numbers)."""
    lo = lo.copy()
    hi = hi.copy()
    rel, cell, coef = relations.rel, relations.cell, relations.coef
    n_rel = relations.count
    if rel.size and (rel[1:] < rel[:-1]).any():
        order = np.argsort(rel, kind="stable")
        rel, cell, coef = rel[order], cell[order], coef[order]
    ptr = np.concatenate([[0], np.cumsum(np.bincount(rel, minlength=n_rel))]).astype(np.int64)
    # Relations of each cell, to wake only those whose members changed.
    by_cell = np.argsort(cell, kind="stable")
    cptr = np.concatenate([[0], np.cumsum(np.bincount(cell, minlength=lo.size))]).astype(np.int64)
    active = np.flatnonzero(ptr[1:] > ptr[:-1])
    for _ in range(max_sweeps):
        if active.size == 0:
            break
        lengths = ptr[active + 1] - ptr[active]
        at = ranges(ptr[active], lengths)
        c, a = cell[at], coef[at]
        # Sums over the woken relations only, numbered locally.
        local = np.repeat(np.arange(active.size), lengths)
        low, high = _implied(local, a, lo[c], hi[c], slack_hi[active], active.size)
        new_lo = lo.copy()
        new_hi = hi.copy()
        np.maximum.at(new_lo, c, np.ceil(low - _EPS))
        np.minimum.at(new_hi, c, np.floor(high + _EPS))
        changed = np.flatnonzero((new_lo > lo + _EPS) | (new_hi < hi - _EPS))
        lo, hi = new_lo, new_hi
        if changed.size == 0:
            break
        members = by_cell[ranges(cptr[changed], cptr[changed + 1] - cptr[changed])]
        woken = np.zeros(n_rel, dtype=bool)
        woken[rel[members]] = True
        active = np.flatnonzero(woken)
    return lo, hi


def audit(
    values: Ints,
    ks: Ints,
    hidden: Bools,
    relations: Relations,
    prior_lo: Floats | None = None,
    prior_hi: Floats | None = None,
    fixed: Bools | None = None,
    max_rounds: int = 200,
) -> Audit:
    """Check a withholding decision and withhold more until every protected cell holds.

    ``prior_lo``/``prior_hi`` override a reader's starting bounds where given (finite or
    not NaN), for cells whose range is known from another table (the whole area's count,
    decided in its own table). ``fixed`` cells are never chosen as cover.
    """
    hidden = hidden.copy()
    fixed = np.zeros(values.size, dtype=bool) if fixed is None else fixed
    order = np.argsort(relations.rel, kind="stable")  # propagate reads relations in order
    relations = Relations(
        relations.rel[order], relations.cell[order], relations.coef[order], relations.slack
    )
    k_rel = np.zeros(relations.count, dtype=np.float64)
    # A relation's threshold: its members share one (no relation mixes sensitive counts).
    k_rel[relations.rel[::-1]] = ks[relations.cell[::-1]]
    slack_hi = relations.slack * (k_rel - 1)
    first = hidden.copy()
    # The range each cell must keep: [0, k-1] for a withheld count of 1..k-1; cover that
    # pins such a cell is widened in turn (want set when it is found in the way).
    protect = (values >= 1) & (values < ks)  # fixed cells too: cover comes from the others
    want_lo = np.where(protect, 0.0, INF)  # INF (and -INF below): nothing asked
    want_hi = np.full(values.size, -INF)
    cap = np.where(values < ks, ks - 1.0, INF)  # a withheld count below k never exceeds k-1
    lo = hi = np.zeros(0)
    rounds = 0
    unresolved = first_provable = 0
    for rounds in range(1, max_rounds + 1):  # noqa: B007 - the count is reported
        lo, hi = priors(values, ks, hidden)
        if prior_lo is not None and prior_hi is not None:
            given = ~np.isnan(prior_lo)
            lo = np.where(given, prior_lo, lo)
            hi = np.where(given, prior_hi, hi)
        live = _live(relations, hidden)
        lo, hi = propagate(lo, hi, live, slack_hi)
        narrow = hidden & ((lo > want_lo + _EPS) | (hi < want_hi - _EPS))
        unresolved = int((hidden & protect & (lo > _EPS)).sum())
        if rounds == 1:
            first_provable = unresolved
        if not narrow.any():
            break
        covers, wider, want = _covers(
            values, hidden, fixed, narrow, live, lo, hi, slack_hi, want_lo, want_hi, cap
        )
        # Cover in the way (a relation with nothing left to withhold) must move in turn.
        raise_hi = np.isfinite(want[:, 1])
        grow = want[:, 1] > want_hi[wider] + _EPS
        shrink = want[:, 0] < want_lo[wider] - _EPS
        if covers.size == 0 and not (grow | shrink).any():
            break
        hidden[covers] = True
        want_hi[wider[raise_hi]] = np.maximum(want_hi[wider[raise_hi]], want[raise_hi, 1])
        want_lo[wider] = np.minimum(want_lo[wider], want[:, 0])
    added = int((hidden & ~first).sum())
    return Audit(hidden, lo, hi, rounds, added, unresolved, first_provable)


def _live(relations: Relations, hidden: Bools) -> Relations:
    """The relations that hold a withheld member or unlisted parts (the others tell nothing)."""
    has = np.bincount(relations.rel, weights=hidden[relations.cell], minlength=relations.count)
    keep = (has > 0) | (relations.slack > 0)
    m = keep[relations.rel]
    return Relations(relations.rel[m], relations.cell[m], relations.coef[m], relations.slack)


def _covers(
    values: Ints,
    hidden: Bools,
    fixed: Bools,
    narrow: Bools,
    relations: Relations,
    lo: Floats,
    hi: Floats,
    slack_hi: Floats,
    want_lo: Floats,
    want_hi: Floats,
    cap: Floats,
) -> tuple[Ints, Ints, Floats]:
    """One more withheld cell in each relation that narrows a cell's range.

    A part (coefficient +1) withheld as cover adds its count to what the others can hold,
    so the smallest part that makes up the shortfall is chosen; failing that the largest
    part; failing that the sum cell. Where a relation has nothing left to withhold, one of
    its withheld parts must move instead: returned with the range it must then reach
    (columns lo, hi; ±inf where nothing is asked), so the next round widens it in its own
    relations (cover along a cycle of relations, one link a round).
    """
    rel, cell, coef = relations.rel, relations.cell, relations.coef
    low, high = _implied(rel, coef, lo[cell], hi[cell], slack_hi, relations.count)
    short_lo = np.maximum(low - want_lo[cell], 0)
    short_hi = np.maximum(want_hi[cell] - high, 0)
    binding = narrow[cell] & ((short_lo > _EPS) | (short_hi > _EPS))
    if not binding.any():
        # Narrowed by whole numbers or a chain: look in every relation of the cell.
        binding = narrow[cell]
    need = np.zeros(relations.count)
    np.maximum.at(need, rel[binding], short_hi[binding])
    at_risk = np.zeros(relations.count, dtype=bool)
    at_risk[rel[binding]] = True
    cand = at_risk[rel] & ~hidden[cell] & (values[cell] > 0) & ~fixed[cell]
    has = np.zeros(relations.count, dtype=bool)
    has[rel[cand]] = True
    wider, want = _in_the_way(
        relations, at_risk, binding, short_lo, hidden, fixed, narrow, lo, hi, cap
    )
    if not cand.any():
        return np.zeros(0, dtype=np.int64), wider, want
    r, c, a = rel[cand], cell[cand], coef[cand]
    v = values[c].astype(np.float64)
    enough = (a > 0) & (v >= need[r])
    tier = np.where(enough, 0, np.where(a > 0, 1, 2))
    # Within a tier: smallest first for 0 and 2, largest first for 1.
    score = np.where(tier == 1, -v, v)
    pick = np.lexsort((c, score, tier, r))
    r, c = r[pick], c[pick]
    first = np.ones(r.size, dtype=bool)
    first[1:] = r[1:] != r[:-1]
    return np.unique(c[first]), wider, want


def _in_the_way(
    relations: Relations,
    stuck: Bools,
    binding: Bools,
    short_lo: Floats,
    hidden: Bools,
    fixed: Bools,
    narrow: Bools,
    lo: Floats,
    hi: Floats,
    cap: Floats,
) -> tuple[Ints, Floats]:
    """In each relation that narrows a cell, the withheld members that must move for it.

    A part proven to hold at least ``s`` is freed when another part can hold ``s`` more (its
    upper bound raised) or the sum ``s`` less (its lower bound lowered); a sum proven to
    hold at least ``s``, when a part can hold ``s`` less. In each relation the part with
    the most room is chosen, and the sum where it can move.
    """
    rel, cell, coef = relations.rel, relations.cell, relations.coef
    on = binding & stuck[rel]
    gap_part = np.zeros(relations.count)
    gap_sum = np.zeros(relations.count)
    np.maximum.at(gap_part, rel[on & (coef > 0)], short_lo[on & (coef > 0)])
    np.maximum.at(gap_sum, rel[on & (coef < 0)], short_lo[on & (coef < 0)])
    free = stuck[rel] & hidden[cell] & ~fixed[cell] & ~narrow[cell]
    part = free & (coef > 0)
    choices = (
        # (members, room to sort by, gap, which bound: 1 upper raised, 0 lower lowered)
        (part & (gap_part[rel] > _EPS) & (hi[cell] < cap[cell]), -hi[cell], gap_part, 1),
        (free & (coef < 0) & (gap_part[rel] > _EPS) & (lo[cell] > _EPS), -lo[cell], gap_part, 0),
        (part & (gap_sum[rel] > _EPS) & (lo[cell] > _EPS), -lo[cell], gap_sum, 0),
    )
    out_cells: list[Ints] = []
    out_want: list[Floats] = []
    for mask, room, gap, column in choices:
        if not mask.any():
            continue
        r, c = rel[mask], cell[mask]
        pick = np.lexsort((c, room[mask], r))  # most room first
        r, c = r[pick], c[pick]
        first = np.ones(r.size, dtype=bool)
        first[1:] = r[1:] != r[:-1]
        r, c = r[first], c[first]
        want = np.column_stack([np.full(c.size, INF), np.full(c.size, -INF)])
        if column == 1:
            want[:, 1] = np.minimum(hi[c] + gap[r], cap[c])
        else:
            want[:, 0] = np.maximum(lo[c] - gap[r], 0)
        out_cells.append(c)
        out_want.append(want)
    if not out_cells:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 2))
    return np.concatenate(out_cells), np.concatenate(out_want)
