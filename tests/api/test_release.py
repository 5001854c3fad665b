"""Differencing across public queries: an attacker holding every public answer of a year.

The attacker asks /v1/aggregate for every period of the release (the year, its quarters,
its months), writes down every published count, total and outside count, and solves the
linear system that ties them (units sum to the total; months to their quarter; quarters to
their year) for the withheld cells, knowing which withheld cells are below k. scipy's
linear programming (HiGHS) is the oracle: a withheld cell whose smallest and largest
feasible values coincide would be disclosed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import h3
import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from api.main import create_app
from api.settings import ServerSettings
from store import Store
from tests.api.test_privacy import COMMON, pinned, truth

YEAR = 2023


def periods() -> list[tuple[str, str]]:
    """The year, its quarters, its months: every period the release publishes."""

    def first(month: int) -> date:
        return date(YEAR + (month - 1) // 12, (month - 1) % 12 + 1, 1)

    spans = [(1, 13)] + [(q, q + 3) for q in (1, 4, 7, 10)] + [(m, m + 1) for m in range(1, 13)]
    return [(first(a).isoformat(), first(b).isoformat()) for a, b in spans]


@pytest.fixture(scope="module")
def public(sample_store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(ServerSettings(store=sample_store.root))) as client:
        yield client


def harvest(client: TestClient, unit: str, crime: dict[str, str]) -> list[dict[str, Any]]:
    """Every public answer of the year for one unit and offense set."""
    out = []
    for start, end in periods():
        response = client.get("/v1/aggregate", params={"unit": unit, "start": start, "end": end,
                                                       **crime})  # fmt: skip
        assert response.status_code == 200, response.text
        out.append(response.json())
    return out


@pytest.mark.parametrize(
    ("unit", "crime"),
    [("colonia", {}), ("colonia", {"category": "robo_transeunte"}), ("colonia", {"offense": COMMON}),
     ("h3:6", {}), ("h3:7", {}), ("h3:6", {"category": "robo_transeunte"})],
)  # fmt: skip
def test_no_withheld_cell_can_be_solved_for(
    public: TestClient, sample_store: Store, unit: str, crime: dict[str, str]
) -> None:
    answers = harvest(public, unit, crime)
    k = answers[0]["privacy"]["k"]
    manifest = sample_store.require_manifest()
    true = [truth(sample_store, unit, s, e, crime)[0] for s, e in periods()]
    units: list[str | None] = sorted({u for t in true for u in t if u is not None})
    if unit.startswith("h3:"):
        units.append("rest of the world")  # every other cell: one unknown, unbounded
    else:
        units += [f"no case {i}" for i in range(manifest.layers[unit].features - len(units))]
        units.append(None)  # outside every colonia
    n_p = len(answers)
    value = np.array([[true[p].get(u, 0) for p in range(n_p)] for u in units], dtype=np.int64)
    shown = np.zeros(value.shape, dtype=bool)
    for p, body in enumerate(answers):
        published = {r["unit_id"]: r["count"] for r in body["rows"]}
        for i, u in enumerate(units):
            if u in published:
                assert published[u] == value[i, p]
                shown[i, p] = True
        if body["unassigned"] is not None:
            assert body["unassigned"] == value[-1, p]
            shown[-1, p] = True
    hidden = ~shown
    var = -np.ones(value.shape, dtype=np.int64)
    var[hidden] = np.arange(int(hidden.sum()))
    rows: list[int] = []
    cols: list[int] = []
    rhs: list[float] = []

    def relation(cells: list[tuple[int, int]], total: int) -> None:
        known = sum(int(value[c]) for c in cells if shown[c])
        for c in cells:
            if hidden[c]:
                rows.append(len(rhs))
                cols.append(int(var[c]))
        rhs.append(total - known)

    for p, body in enumerate(answers):  # space: every unit and the outside sum to the total
        if body["total"] is not None:
            relation([(i, p) for i in range(len(units))], body["total"])
    for i in range(len(units)):  # time: months to quarters, quarters to the year
        for q in range(4):
            if shown[i, 1 + q]:
                relation([(i, 5 + 3 * q + m) for m in range(3)], int(value[i, 1 + q]))
        if shown[i, 0]:
            relation([(i, 1 + q) for q in range(4)], int(value[i, 0]))
    a = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(rhs), int(hidden.sum())))
    cells = np.argwhere(hidden)
    bounds = [(0, k - 1) if value[i, p] < k and units[i] != "rest of the world" else (0, None)
              for i, p in cells]  # fmt: skip
    positive = [j for j, (i, p) in enumerate(cells) if value[i, p] > 0]
    assert positive, "nothing withheld: the test would prove nothing"
    picks = np.random.default_rng(7).choice(positive, size=min(12, len(positive)), replace=False)
    for j in picks:
        c = np.zeros(len(cells))
        c[j] = 1
        low = linprog(c, A_eq=a.tocsr(), b_eq=rhs, bounds=bounds, method="highs")
        high = linprog(-c, A_eq=a.tocsr(), b_eq=rhs, bounds=bounds, method="highs")
        assert low.status == 0 and high.status == 0
        i, p = cells[j]
        assert low.fun <= value[i, p] <= -high.fun  # the truth is feasible: the system is right
        assert -high.fun - low.fun >= 1 - 1e-6, (units[i], p, value[i, p], low.fun, -high.fun)


def test_h3_children_do_not_give_their_parent_away(public: TestClient, sample_store: Store) -> None:
    start, end = f"{YEAR}-01-01", f"{YEAR + 1}-01-01"
    shown = {
        res: {r["unit_id"]: r["count"] for r in public.get(
            "/v1/aggregate", params={"unit": f"h3:{res}", "start": start, "end": end}
        ).json()["rows"]}
        for res in (6, 7, 8, 9)
    }  # fmt: skip
    for res in (7, 8, 9):
        counts, _ = truth(sample_store, f"h3:{res}", start, end, {})
        children: dict[str, list[str]] = {}
        for cell in counts:
            children.setdefault(h3.cell_to_parent(cell, res - 1), []).append(str(cell))
        for parent, cells in children.items():
            if parent not in shown[res - 1]:
                continue  # the parent's count is not published
            withheld = [counts[c] for c in cells if c not in shown[res]]
            assert not pinned(withheld, 7 - len(cells), 5), (parent, withheld)
            published = sum(shown[res].get(c, 0) for c in cells)
            assert published + sum(withheld) == shown[res - 1][parent]
