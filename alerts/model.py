"""The surge rule: a unit's last complete month (or week) against what its history predicts.

A simplified Farrington baseline (Farrington et al. 1996, the method public-health agencies
run on weekly counts), per unit and selection:

- **Baseline**: the same period and its two neighbours (±1 month, or ±1 week) in each of the
  ``years`` years before (3 → up to 9 values). The same season, so December is compared with
  Decembers.
- **Trend**: the last 12 months (52 weeks) before the period against the 12 months a year
  earlier, ``(recent + 1) / (earlier + 1)``, clipped to [0.5, 2]: a unit whose crime has
  doubled in a year is not alerted every month for it.
- **Expected** count ``λ = mean(baseline) × trend``; **dispersion** ``φ = max(1, var / mean)``
  of the baseline (quasi-Poisson), and never below the median φ of the layer's units (nine
  values say little about one unit's spread; the layer's units say more). The count is
  negative binomial with mean λ and variance φλ(1 + 1/n), n the baseline values: the
  spread of a new count around an *estimated* mean, as Farrington's prediction interval
  (Poisson only without any spread at all).
- **Alert** when ``P(X ≥ observed) < α`` (the false-alarm rate asked for, 1 % by default) and
  the observed count is at least ``min_count`` (a jump from 0 to 2 is not worth a message).

benchmarks/alerts.py backtests it on 2019–2024: the share of unit-months alerted with nothing
injected, and the share caught of injected +50 % surges (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

ALPHA = 0.01
MIN_COUNT = 5
MIN_BASELINE = 6  # baseline values with data, of 9: fewer and there is no verdict
TREND_CLIP = (0.5, 2.0)


@dataclass(frozen=True)
class Verdict:
    """Per unit: expected count, dispersion, the exceedance p and whether it alerts."""

    expected: npt.NDArray[np.float64]
    dispersion: npt.NDArray[np.float64]
    p: npt.NDArray[np.float64]  # P(X >= observed); 1 where there is no verdict
    alert: npt.NDArray[np.bool_]


def judge(
    observed: npt.ArrayLike,
    baseline: npt.ArrayLike,
    recent: npt.ArrayLike,
    earlier: npt.ArrayLike,
    alpha: float | npt.NDArray[np.float64] = ALPHA,
    min_count: int = MIN_COUNT,
    dispersion_floor: float = 1.0,
) -> Verdict:
    """The verdict for each unit (row).

    Parameters
    ----------
    observed
        The period's count, one per unit.
    baseline
        Units × values: the same period and its neighbours in earlier years; NaN where the
        data do not reach.
    recent, earlier
        The 12 months (52 weeks) before the period, and the same a year earlier.
    alpha
        The false-alarm rate: the exceedance probability below which a count alerts.
    dispersion_floor
        The least φ (``pooled_dispersion`` of the layer's units).
    """
    # Imported here: scipy.stats is half a second of a server's start (api.main warms it).
    from scipy import stats

    obs = np.asarray(observed, dtype=np.float64)
    base = np.atleast_2d(np.asarray(baseline, dtype=np.float64))
    known = np.sum(~np.isnan(base), axis=1)
    with warnings.catch_warnings():  # a unit without baseline: no verdict, no warning
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nan_to_num(np.nanmean(base, axis=1))
        var = np.nan_to_num(np.nanvar(base, axis=1, ddof=1))
    trend = np.clip(
        (np.asarray(recent, np.float64) + 1) / (np.asarray(earlier, np.float64) + 1), *TREND_CLIP
    )
    expected = np.maximum(mean * trend, 0.5)  # never zero: one case in an empty unit is news
    safe = np.where(mean > 0, mean, 1.0)
    spread = np.where(mean > 0, np.maximum(var / safe, max(dispersion_floor, 1.0)), 1.0)
    # The mean is estimated from n values: a new count varies around it by φλ(1 + 1/n).
    dispersion = spread * (1.0 + 1.0 / np.maximum(known, 1))
    p = np.ones_like(obs)
    poisson = dispersion <= 1.0
    p[poisson] = stats.poisson.sf(obs[poisson] - 1, expected[poisson])
    nb = ~poisson
    size = expected[nb] / (dispersion[nb] - 1.0)
    p[nb] = stats.nbinom.sf(obs[nb] - 1, size, 1.0 / dispersion[nb])
    enough = known >= MIN_BASELINE
    p = np.where(enough, p, 1.0)
    alert = enough & (obs >= min_count) & (p < alpha)
    return Verdict(expected, dispersion, p, alert)


def pooled_dispersion(baseline: npt.ArrayLike) -> float:
    """The median variance-to-mean ratio of the units' baselines (1 when none has data)."""
    base = np.atleast_2d(np.asarray(baseline, dtype=np.float64))
    enough = np.sum(~np.isnan(base), axis=1) >= MIN_BASELINE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(base[enough], axis=1)
        var = np.nanvar(base[enough], axis=1, ddof=1)
    ratio = var[mean > 0] / mean[mean > 0]
    return float(np.median(ratio)) if ratio.size else 1.0
