"""Alerts: the surge rule backtested on 2019–2024, and 10,000 subscriptions evaluated.

    python benchmarks/alerts.py --store DIR

1. Backtest: every colonia and month of 2022–2024 (each with three years of history) under
   the surge rule (alerts/model.py) at α = 0.01 and 0.001, all offenses and one category:
   the share of unit-months alerted as they are (false alarms: nothing was injected), and
   the share alerted when the month's count is raised by 50 % in the colonias of median
   size (the middle fifth by mean monthly count).
2. 10,000 subscriptions (colonias × selections, monthly surge rule) evaluated on the
   store's snapshot into a fresh book: wall time (target 5 s), beside the same verdicts
   computed one subscription at a time with its own query (the naive peer), on a sample.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [
    str(_HERE.parent),
    *(p for p in sys.path if Path(p or ".").resolve() != _HERE),
    str(_HERE),
]

import numpy as np  # noqa: E402

from alerts.book import Book, Subscription  # noqa: E402
from alerts.evaluate import evaluate, last_period  # noqa: E402
from alerts.model import judge, pooled_dispersion  # noqa: E402
from store import Store  # noqa: E402
from store.aggregate import Unit, timeseries, unit_series  # noqa: E402
from store.engine import open_engine  # noqa: E402
from store.filters import Filters  # noqa: E402

SELECTIONS: list[tuple[str, ...]] = [(), ("robo_transeunte",), ("violencia_familiar",),
                                     ("robo_vehiculo",), ("robo_negocio",), ("fraude",)]  # fmt: skip


def monthly(store: Store, categories: tuple[str, ...]) -> tuple[list[date], dict[str, np.ndarray]]:
    """Counts per colonia and month, 2019–2024."""
    snap = store.snapshot()
    flt = Filters(start=date(2019, 1, 1), end=date(2025, 1, 1), categories=categories)
    got = unit_series(snap, Unit("layer", layer="colonia"), "month", flt, open_engine())
    series: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(got.periods)))
    for uid, at, n in zip(got.unit_ids, got.period_index, got.counts, strict=True):
        series[uid][at] = n
    return got.periods, dict(series)


def backtest(
    periods: list[date], series: dict[str, np.ndarray], alpha: float
) -> tuple[float, float, int]:
    """False-alarm share, detection share of +50 % in median colonias, unit-months judged."""
    units = sorted(series)
    y = np.array([series[u] for u in units])  # units × months
    means = y[:, :36].mean(axis=1)
    lo, hi = np.quantile(means, [0.4, 0.6])
    median = (means >= lo) & (means <= hi)
    false, caught, judged, tried = 0, 0, 0, 0
    for m in range(36, len(periods)):  # 2022-01 on: three years before each
        base = np.stack([y[:, m - 12 * k + d] for k in (1, 2, 3) for d in (-1, 0, 1)
                         if 0 <= m - 12 * k + d < len(periods)], axis=1)  # fmt: skip
        recent, earlier = y[:, m - 12 : m].sum(axis=1), y[:, m - 24 : m - 12].sum(axis=1)
        floor = pooled_dispersion(base)
        v = judge(y[:, m], base, recent, earlier, alpha=alpha, dispersion_floor=floor)
        false += int(v.alert.sum())
        judged += len(units)
        raised = judge(np.round(y[:, m] * 1.5), base, recent, earlier, alpha=alpha,
                       dispersion_floor=floor)  # fmt: skip
        caught += int(raised.alert[median].sum())
        tried += int(median.sum())
    return false / judged, caught / tried, judged


def evaluation(store: Store, n: int) -> tuple[float, int, float]:
    """Seconds to evaluate n subscriptions into a fresh book, alerts fired, and the naive
    peer's seconds per subscription (its own timeseries query each), on 20."""
    snap = store.snapshot()
    from store.aggregate import unit_names

    colonias = sorted(unit_names(snap, Unit("layer", layer="colonia")))
    with tempfile.TemporaryDirectory() as tmp:
        book = Book(Path(tmp))
        subs = [
            Subscription(f"s{i:05d}", "bench", {"unit": "colonia", "id": colonias[i % len(colonias)]},
                         categories=SELECTIONS[i % len(SELECTIONS)])
            for i in range(n)
        ]  # fmt: skip
        with book.transaction() as con:
            from alerts.book import _to_row

            con.executemany("INSERT INTO subscriptions (id, owner, created, body, feed_token) "
                            "VALUES (?, ?, ?, ?, ?)", [_to_row(s) for s in subs])  # fmt: skip
        con = open_engine()
        t0 = time.perf_counter()
        fired = evaluate(book, snap, con)
        took = time.perf_counter() - t0
    last = max(date.fromisoformat(f.max_date) for f in snap.manifest.files)
    p = last_period(last, "month")
    t0 = time.perf_counter()
    for s in subs[:20]:
        flt = Filters(start=min(p.baseline), end=p.end, categories=s.categories,
                      within=("colonia", s.place["id"]))  # fmt: skip
        timeseries(snap, "month", flt, None, None, con)
    naive = (time.perf_counter() - t0) / 20
    return took, len(fired), naive


def main() -> int:
    """Print the backtest and the evaluation figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True)
    parser.add_argument("--subscriptions", type=int, default=10_000)
    args = parser.parse_args()
    store = Store(args.store)
    for categories in ((), ("robo_transeunte",)):
        periods, series = monthly(store, categories)
        what = ", ".join(categories) or "all offenses"
        for alpha in (0.01, 0.001):
            fa, caught, judged = backtest(periods, series, alpha)
            print(f"backtest {what:16s} alpha {alpha:<6g} {judged:,} colonia-months 2022-2024: "
                  f"alerted as they are {fa:.2%}; +50 % in median colonias caught {caught:.1%}")  # fmt: skip
    took, fired, naive = evaluation(store, args.subscriptions)
    print(f"evaluate {args.subscriptions:,} subscriptions: {took:.2f} s ({fired} alerts); "
          f"naive peer (one query each): {naive * 1000:.1f} ms a subscription = "
          f"{naive * args.subscriptions:.0f} s for all")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
