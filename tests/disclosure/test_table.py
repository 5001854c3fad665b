"""The published table of a real year: the audit leaves fewer cells a reader can prove hold a case."""

from __future__ import annotations

import duckdb
import numpy as np

from disclosure.audit import Relations, priors, propagate
from disclosure.offenses import forest
from disclosure.rules import PublicRules
from disclosure.table import TOTAL, Counts, Family, _relations, build_table
from store import Store
from store.monthly import monthly_counts
from store.query import offense_triples
from store.snapshot import Snapshot


def test_colonia_table_of_a_real_year(sample_store: Store) -> None:
    manifest = sample_store.require_manifest()
    tree = forest(offense_triples(Snapshot(sample_store, manifest)))
    rules = PublicRules()
    con = duckdb.connect()

    def counts(family: str) -> Counts:
        c = monthly_counts(
            Snapshot(sample_store, manifest), family, 2023, tuple(range(1, 13)), 9, con
        )
        return Counts(c.units, c.month, c.offense, c.offense_names, c.count)

    whole = build_table(counts(TOTAL), tree, rules, Family(TOTAL, 1, True))
    size = manifest.layers["colonia"].features
    table = build_table(counts("colonia"), tree, rules, Family("colonia", size, True), 12, whole)
    # Every cell the analyst's exact count; the whole area's year equals the file's.
    year_all = whole.value[whole.position("", 0, tree.index["*"])]
    truth = con.sql(
        "SELECT count(*) FROM read_parquet(?) WHERE year(local_date) = 2023 AND NOT sensitive",
        params=[[str(sample_store.root / f.path) for f in manifest.files]],
    ).fetchall()
    assert int(year_all) == truth[0][0]
    ks = np.where(tree.sensitive[table.node], rules.k_sensitive, rules.k)
    protected = (table.value >= 1) & (table.value < ks)
    assert table.hidden[protected].all()  # below k is never shown
    assert table.checked is not None
    assert table.checked.covers > 0  # the first pass alone did not hold on real data
    # Re-run the attacker's bounds on the published pattern, independently of the build.
    n = table.value.size
    rel = _relations(table.unit.astype(np.int64), table.period.astype(np.int64),
                     table.node.astype(np.int64), np.zeros(n, np.int64), table.ids,
                     Family("colonia", size, True), tree, np.full(len(table.ids), -1))  # fmt: skip
    outside = rel.cell >= n
    keys = rel.cell[outside] - n
    totals = np.array([whole.value[whole.position("", k // len(tree.names), k % len(tree.names))]
                       for k in keys.tolist()])  # fmt: skip
    shown_total = np.array([not whole.hidden[whole.position("", k // len(tree.names),
                                                            k % len(tree.names))]
                            for k in keys.tolist()])  # fmt: skip
    # Relations whose whole-area count is withheld are left to that table's own audit.
    keep_rel = np.ones(rel.count, dtype=bool)
    keep_rel[rel.rel[outside][~shown_total]] = False
    m = keep_rel[rel.rel]
    values = np.concatenate([table.value.astype(np.int64), totals])
    cell = rel.cell.copy()
    cell[outside] = n + np.arange(int(outside.sum()))
    hidden = np.concatenate([table.hidden, np.zeros(totals.size, dtype=bool)])
    k_all = np.concatenate([ks, np.full(totals.size, rules.k)])
    lo, hi = priors(values, k_all, hidden)
    k_rel = np.zeros(rel.count)
    k_rel[rel.rel[::-1]] = k_all[cell[::-1]]
    live = Relations(rel.rel[m], cell[m], rel.coef[m], rel.slack)
    lo, hi = propagate(lo, hi, live, rel.slack * (k_rel - 1))
    provable = hidden[:n] & protected & (lo[:n] > 0)
    first = table.value < ks
    assert int(provable.sum()) <= table.checked.unresolved
    assert int(provable.sum()) < int(first.sum())
