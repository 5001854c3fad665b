"""Differencing across public queries: an exact attacker holding every public answer of a year.

The attacker asks /v1/aggregate for every period of the release (the year, its quarters,
its months) at one or several nested units (H3 resolutions together), writes down every
published count, total and outside count, and solves the linear system that ties them
(units and the outside count sum to the total; H3 children to their parent; months to
their quarter, quarters to their year; a withheld sum is one more unknown) with scipy's
linear programming (HiGHS). The attacker knows which withheld cells are below k (in
``[0, k-1]``); other withheld cells are anywhere in ``[0, ∞)``.

The release's promise (docs/privacy.md): no withheld cell holding 1 to k-1 cases can be
shown to hold a case: its smallest feasible value is 0.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import h3
import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from api.main import create_app
from api.settings import ServerSettings
from ingest.layers import add_boundary_file
from publication import tables
from store import Store
from tests.api.test_privacy import COMMON, FAMILY, SENSITIVE, pinned, truth
from tests.conftest import COLONIAS, POINTS

YEAR = 2023
Cell = tuple[str, Any, int]  # (unit name, unit id, period index)


def periods(year: int) -> list[tuple[str, str]]:
    """The year, its quarters, its months: every period the release publishes."""

    def first(month: int) -> date:
        return date(year + (month - 1) // 12, (month - 1) % 12 + 1, 1)

    spans = [(1, 13)] + [(q, q + 3) for q in (1, 4, 7, 10)] + [(m, m + 1) for m in range(1, 13)]
    return [(first(a).isoformat(), first(b).isoformat()) for a, b in spans]


@pytest.fixture(scope="module")
def public(sample_store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(ServerSettings(store=sample_store.root))) as client:
        yield client


@dataclass
class System:
    """Unknowns (withheld cells), their true values and bounds, and the equations."""

    k: int
    var: dict[Cell, int] = field(default_factory=dict)
    true: list[int] = field(default_factory=list)
    bound: list[tuple[float, float | None]] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    cols: list[int] = field(default_factory=list)
    coef: list[float] = field(default_factory=list)
    rhs: list[float] = field(default_factory=list)
    shown: dict[Cell, int] = field(default_factory=dict)

    def unknown(self, cell: Cell, value: int, bound: tuple[float, float | None]) -> None:
        """A withheld cell."""
        self.var[cell] = len(self.true)
        self.true.append(value)
        self.bound.append(bound)

    def equation(self, parts: list[Cell], total: Cell | None, constant: int = 0) -> None:
        """sum(parts) - total = constant, with shown cells moved to the right."""
        row = len(self.rhs)
        rhs = float(constant)
        for cell, sign in [(p, 1.0) for p in parts] + ([(total, -1.0)] if total else []):
            if cell in self.shown:
                rhs -= sign * self.shown[cell]
            else:
                self.rows.append(row)
                self.cols.append(self.var[cell])
                self.coef.append(sign)
        self.rhs.append(rhs)

    def smallest(self, cell: Cell) -> float:
        """The smallest value of a withheld cell consistent with everything published."""
        a = coo_matrix((self.coef, (self.rows, self.cols)), shape=(len(self.rhs), len(self.true)))
        c = np.zeros(len(self.true))
        c[self.var[cell]] = 1
        res = linprog(c, A_eq=a.tocsr(), b_eq=self.rhs, bounds=self.bound, method="highs")
        assert res.status == 0, res.message
        return float(res.fun)


def attack(
    client: TestClient, store: Store, units: list[str], crime: dict[str, str], year: int
) -> tuple[System, list[Cell]]:
    """Harvest every public answer of a year for nested units; the system and the cells at risk."""
    spans = periods(year)
    answers = {
        (u, p): client.get("/v1/aggregate", params={"unit": u, "start": s, "end": e, **crime})
        for u in units
        for p, (s, e) in enumerate(spans)
    }
    for response in answers.values():
        assert response.status_code == 200, response.text
    k = next(iter(answers.values())).json()["privacy"]["k"]
    system = System(k)
    manifest = store.require_manifest()
    at_risk: list[Cell] = []
    ids: dict[str, list[Any]] = {}
    for u in units:
        true = [truth(store, u, s, e, crime)[0] for s, e in spans]
        listed = sorted({i for t in true for i in t if i is not None})
        if u.startswith("h3:"):
            extra: list[Any] = ["rest of the world"]  # every other cell: one unknown, unbounded
        else:
            # Units without a case all year: one unknown, up to k-1 each.
            fill = manifest.layers[u].features - len(listed)
            extra = (["no case"] if fill > 0 else []) + [None]
        ids[u] = listed + extra
        for p in range(len(spans)):
            body = answers[(u, p)].json()
            published = {r["unit_id"]: r["count"] for r in body["rows"]}
            for i in ids[u]:
                cell = (u, i, p)
                value = true[p].get(i, 0)
                shown = published.get(i) if i is not None else body["unassigned"]
                if shown is not None:
                    assert shown == value, (cell, shown, value)
                    system.shown[cell] = shown
                    continue
                unbounded = i == "rest of the world" or value >= k
                bound = (0, fill * (k - 1)) if i == "no case" else (0, None if unbounded else k - 1)
                system.unknown(cell, value, bound)
                if 0 < value < k:
                    at_risk.append(cell)
            total = body["total"]
            if total is not None:  # space: the units and the outside count make the total
                system.equation([(u, i, p) for i in ids[u]], None, total)
        for i in ids[u]:  # time: months to their quarter, quarters to their year
            for q in range(4):
                system.equation([(u, i, 5 + 3 * q + m) for m in range(3)], (u, i, 1 + q))
            system.equation([(u, i, 1 + q) for q in range(4)], (u, i, 0))
    _nest(system, units, ids, len(spans))
    _nest_layers(system, store, units, ids, len(spans))
    return system, at_risk


def _nest(system: System, units: list[str], ids: dict[str, list[Any]], n_periods: int) -> None:
    """H3 children sum to their parent; children with no case are one unknown per parent."""
    for fine, coarse in zip(units[1:], units[:-1], strict=False):
        if not (fine.startswith("h3:") and coarse.startswith("h3:")):
            continue
        res = int(coarse[3:])
        children: dict[str, list[str]] = {}
        for cell in ids[fine]:
            if cell != "rest of the world":
                children.setdefault(h3.cell_to_parent(cell, res), []).append(cell)
        for parent in ids[coarse]:
            if parent == "rest of the world":
                continue
            kids = children.get(parent, [])
            for p in range(n_periods):
                others = (fine, f"other children of {parent}", p)
                missing = (6 if h3.is_pentagon(parent) else 7) - len(kids)
                system.unknown(others, 0, (0, missing * (system.k - 1)))
                system.equation([(fine, c, p) for c in kids] + [others], (coarse, parent, p))


def _nest_layers(
    system: System, store: Store, units: list[str], ids: dict[str, list[Any]], n_periods: int
) -> None:
    """A coarse layer's unit is the sum of the fine units whose records all lie in it."""
    for coarse, fine in zip(units[:-1], units[1:], strict=False):
        if coarse.startswith("h3:") or fine.startswith("h3:"):
            continue
        files = [str(p) for p in store.data_files(store.require_manifest())]
        rows = duckdb.sql(
            f'SELECT "{fine}", list(DISTINCT "{coarse}") FROM read_parquet(?) '
            f'WHERE "{fine}" IS NOT NULL GROUP BY 1',
            params=[files],
        ).fetchall()
        split = {p for _, ps in rows if len(ps) > 1 for p in ps}
        children: dict[str, list[str]] = {}
        for child, ps in rows:
            if len(ps) == 1 and ps[0] not in split:
                children.setdefault(ps[0], []).append(child)
        for parent, kids in children.items():
            listed = [c for c in kids if c in ids[fine]]
            for p in range(n_periods):
                system.equation([(fine, c, p) for c in listed], (coarse, parent, p))


def no_case_can_be_proven(system: System, at_risk: list[Cell], sample: int) -> None:
    """Every (sampled) withheld cell with 1..k-1 cases: its smallest feasible value is 0."""
    assert at_risk, "nothing withheld: the attack would prove nothing"
    rng = np.random.default_rng(7)
    picks = rng.choice(len(at_risk), size=min(sample, len(at_risk)), replace=False)
    proven = [
        (at_risk[j], system.true[system.var[at_risk[j]]], low)
        for j in picks
        if (low := system.smallest(at_risk[j])) > 1e-6
    ]
    assert not proven, proven[:5]


SLOW = pytest.mark.slow  # one linear programme per cell over thousands of unknowns


@pytest.mark.parametrize(
    ("units", "crime"),
    [
        pytest.param(["colonia"], {}, marks=SLOW),
        (["colonia"], {"category": "robo_transeunte"}),
        (["colonia"], {"offense": COMMON}),
        (["colonia"], {"offense": FAMILY}),
        pytest.param(["cuadrante"], {}, marks=SLOW),
        (["h3:5", "h3:6", "h3:7"], {}),
        (["h3:5", "h3:6", "h3:7"], {"offense": FAMILY}),
        (["h3:7", "h3:8", "h3:9"], {"offense": COMMON}),
    ],
)
def test_no_withheld_case_can_be_proven(
    public: TestClient, sample_store: Store, units: list[str], crime: dict[str, str]
) -> None:
    system, at_risk = attack(public, sample_store, units, crime, YEAR)
    no_case_can_be_proven(system, at_risk, sample=12)


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
            if any(0 < w < 5 for w in withheld):  # cover of k or more may be known
                assert not pinned(withheld, 7 - len(cells), 5), (parent, withheld)
            published = sum(shown[res].get(c, 0) for c in cells)
            assert published + sum(withheld) == shown[res - 1][parent]


@pytest.fixture(scope="module")
def full_store(layers_store_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The CDMX layers and the whole 1.3 M-row file (2019-2024)."""
    from ingest.pipeline import ingest
    from ingest.profiles import load_profile

    root = tmp_path_factory.mktemp("full") / "store"
    shutil.copytree(layers_store_template, root)
    store = Store(root)
    add_boundary_file(store, "alcaldia", COLONIAS, id_field="NOMDT", name_field="NOMDT",
                      dissolve=True)  # fmt: skip
    ingest(store, [str(POINTS)], load_profile("fgj-cdmx"))
    return store


REAL = [
    (units, {"offense": offense})
    for offense in (FAMILY, SENSITIVE, COMMON, "ROBO A CASA HABITACION SIN VIOLENCIA")
    for units in (
        ["alcaldia", "colonia"],
        ["cuadrante"],
        ["h3:5", "h3:6", "h3:7"],
        ["h3:7", "h3:8", "h3:9"],
    )  # fmt: skip
    if offense in (COMMON, "ROBO A CASA HABITACION SIN VIOLENCIA")
    or units in (["alcaldia", "colonia"], ["h3:5", "h3:6", "h3:7"])  # sensitive: coarse only
]


@pytest.mark.slow
@pytest.mark.parametrize(("units", "crime"), REAL)
def test_no_case_can_be_proven_on_the_whole_file(
    full_store: Store, units: list[str], crime: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tables, "INLINE_COUNTS", 10**9)  # build in the request
    with TestClient(create_app(ServerSettings(store=full_store.root))) as client:
        system, at_risk = attack(client, full_store, units, crime, 2024)
    no_case_can_be_proven(system, at_risk, sample=12)
