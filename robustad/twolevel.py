"""Intervals for a mean over seeds: a two-level bootstrap over seeds and over each seed's eval images (docs/protocol.md
section 6).

A seed draws the reference images, the calib/eval split and everything fitted on them; its eval images then give
its value. The spread over seeds is often larger than the spread over images, so an interval for the mean over
seeds resamples both: resample r draws S seeds with replacement and, for each of the S draws independently, that
seed's eval images with replacement *within each label* (stratified: every resample keeps each seed's numbers of
normal and anomalous images, so a ranking metric is always defined). The value of resample r is the mean over its
S drawn seeds. A metric is given as a function of count matrices (``robustad.resampled``), so a paired comparison
is the same bootstrap of a difference computed on the same draws.

Without per-image scores (a leaderboard row holds a seed's value and its image-level interval), the image level is
drawn from a normal distribution with the standard error the row's 95 % interval implies (``from_rows``).

The bounds are percentiles of the resample values, except at the boundary: a proportion-like metric (in [0, 1])
whose estimate is exactly 0 or 1 (AUROC 0.000 when every attack succeeds) has a degenerate bootstrap distribution
(every resample agrees), and a percentile interval would collapse to the point. There the interval also holds the
Wilson score interval of the estimate with ``n_eff`` independent units (seeds x the smaller class's images with
per-image scores; seeds x eval images from rows, whose class counts are not recorded): the interval a binomial
proportion observed at 0 or 1 has, which does not collapse (0 of n gives [0, z^2 / (n + z^2)]).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from robustad.errors import RobustadError
from robustad.resampled import counts_of

Metric = Callable[[np.ndarray, int], np.ndarray]
"""(counts (R, n_s) of seed s's eval images, s) -> the metric per resample, (R,), NaN where undefined."""
Z95 = float(norm.ppf(0.975))


@dataclass(frozen=True)
class SeedMeanInterval:
    """The mean over seeds, its interval at ``level`` and the bootstrap values it came from. ``p_value``: the
    two-sided bootstrap p-value of "the mean is 0" (for a difference; ``(1 + resamples on the other side of 0) /
    (1 + defined resamples)`` doubled, at most 1); ``boundary``: whether the Wilson score interval was used."""

    estimate: float
    low: float
    high: float
    level: float
    p_value: float
    boundary: bool
    seeds: int

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def stratified_counts(labels: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, n) draw counts of the n images, each label's images drawn with replacement among themselves."""
    drawn = np.empty((resamples, labels.size), dtype=np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        drawn[:, members] = members[rng.integers(0, members.size, size=(resamples, members.size))]
    return counts_of(drawn, labels.size)


def wilson(value: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion observed as ``value`` among ``n`` independent units."""
    z = float(norm.ppf(0.5 + level / 2))
    centre = (value + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(value * (1 - value) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def two_level(labels: Sequence[np.ndarray], metric: Metric, estimate: float, *, resamples: int = 1000,
              seed: int = 0, level: float = 0.95, bounded: bool = True) -> SeedMeanInterval:
    """The two-level bootstrap interval of the mean over seeds of ``metric`` (``labels[s]``: seed s's eval labels;
    ``estimate``: the mean of the metric on every seed's full eval set). ``bounded``: a metric in [0, 1], which
    gets the Wilson interval at the boundary."""
    _check(resamples, seed, level, len(labels))
    rng = np.random.default_rng(seed)
    n_seeds = len(labels)
    chosen = rng.integers(0, n_seeds, size=(resamples, n_seeds))
    per_draw = np.zeros(chosen.shape)
    for s in range(n_seeds):  # each draw of a seed, in any resample, gets image draws of its own
        picked = chosen == s
        if picked.any():
            per_draw[picked] = metric(stratified_counts(np.asarray(labels[s]), int(picked.sum()), rng), s)
    total = per_draw.sum(axis=1)
    smallest = min(int(min(np.sum(y == 1), np.sum(y == 0))) for y in map(np.asarray, labels))
    return summarise(total / n_seeds, estimate, level, bounded, n_seeds * max(smallest, 1), n_seeds)


def from_rows(values: Sequence[float], ses: Sequence[float], *, n_eff: float | None, resamples: int = 1000,
              seed: int = 0, level: float = 0.95, bounded: bool = True) -> SeedMeanInterval:
    """The two-level bootstrap from per-seed values and their image-level standard errors: seeds drawn with
    replacement, each draw's image-level value drawn from Normal(value, se) (clipped to [0, 1] when ``bounded``).
    ``n_eff``: the independent units behind the mean (seeds x eval images) for the Wilson interval (None: unknown,
    no Wilson interval)."""
    v, se = np.asarray(values, dtype=float), np.asarray(ses, dtype=float)
    if v.size == 0 or v.shape != se.shape or np.isnan(v).any() or np.isnan(se).any() or (se < 0).any():
        raise RobustadError(f"from_rows: expected one defined value and one standard error >= 0 per seed, got "
                            f"{v.tolist()} and {se.tolist()}")
    _check(resamples, seed, level, v.size)
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, v.size, size=(resamples, v.size))
    drawn = v[chosen] + se[chosen] * rng.standard_normal(chosen.shape)
    if bounded:
        drawn = np.clip(drawn, 0.0, 1.0)
    return summarise(drawn.mean(axis=1), float(v.mean()), level, bounded, n_eff, v.size)


def paired_from_rows(a: Sequence[float], se_a: Sequence[float], b: Sequence[float], se_b: Sequence[float], *,
                     resamples: int = 1000, seed: int = 0, level: float = 0.95) -> SeedMeanInterval:
    """The mean over seeds of a - b, seeds paired: each drawn seed brings both values, and its image-level errors
    are drawn as independent (without per-image scores their correlation is unknown; on the same images it is
    usually positive, which makes this interval wider than the exact one, never narrower)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    se = np.sqrt(np.asarray(se_a, dtype=float) ** 2 + np.asarray(se_b, dtype=float) ** 2)
    return from_rows(a - b, se, n_eff=None, resamples=resamples, seed=seed, level=level, bounded=False)


def summarise(values: np.ndarray, estimate: float, level: float, bounded: bool, n_eff: float | None,
              seeds: int) -> SeedMeanInterval:
    """Percentile bounds of the defined resample values (with the Wilson interval at the boundary) and the
    bootstrap p-value of 0."""
    defined = values[~np.isnan(values)]
    if defined.size == 0:
        raise RobustadError("two-level bootstrap: the metric is undefined on every resample")
    low, high = (float(b) for b in np.percentile(defined, [50 * (1 - level), 50 * (1 + level)]))
    low, high = min(low, estimate), max(high, estimate)
    boundary = bounded and bool(n_eff) and estimate in (0.0, 1.0)
    if boundary:
        w_low, w_high = wilson(estimate, n_eff, level)
        low, high = min(low, w_low), max(high, w_high)
    below, above = np.sum(defined <= 0), np.sum(defined >= 0)
    p_value = min(1.0, 2 * (1 + min(below, above)) / (1 + defined.size))
    return SeedMeanInterval(float(estimate), low, high, level, float(p_value), boundary, seeds)


def _check(resamples: int, seed: int, level: float, seeds: int) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 1:
        raise RobustadError(f"two-level bootstrap: resamples must be an integer >= 1, got {resamples!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise RobustadError(f"two-level bootstrap: seed must be an integer >= 0, got {seed!r}")
    if not isinstance(level, (int, float)) or isinstance(level, bool) or not 0.0 < level < 1.0:
        raise RobustadError(f"two-level bootstrap: level must be a number in (0, 1), got {level!r}")
    if seeds < 1:
        raise RobustadError("two-level bootstrap: expected at least one seed")


def seed_mean_bounds(values: Sequence[float], lows: Sequence[float], highs: Sequence[float], *, n_eff: float | None,
                     bounded: bool = True, resamples: int = 1000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float]:
    """The interval a table shows for the mean of rows over seeds: ``from_rows`` with each row's standard error
    from its 95 % interval; one row keeps its own interval. Either way a bounded estimate at 0 or 1 also gets the
    Wilson interval with ``n_eff`` units (none when ``n_eff`` is unknown). (nan, nan) when a row lacks a value."""
    v, low, high = (np.asarray(x, dtype=float) for x in (values, lows, highs))
    if v.size == 0 or np.isnan(v).any() or np.isnan(low).any() or np.isnan(high).any():
        return float("nan"), float("nan")
    if v.size > 1:
        result = from_rows(v, np.maximum(high - low, 0.0) / (2 * Z95), n_eff=n_eff, resamples=resamples,
                           seed=seed, level=level, bounded=bounded)
        bounds = (result.low, result.high)
    else:
        bounds = (float(low[0]), float(high[0]))
    estimate = float(v.mean())
    if bounded and n_eff and estimate in (0.0, 1.0):
        w_low, w_high = wilson(estimate, n_eff, level)
        return min(bounds[0], w_low), max(bounds[1], w_high)
    return bounds


def ratio_from_rows(numerators: Sequence[float], se_numerators: Sequence[float], denominators: Sequence[float],
                    se_denominators: Sequence[float], *, resamples: int = 1000, seed: int = 0,
                    level: float = 0.95) -> SeedMeanInterval:
    """The ratio of the means over seeds, mean(numerators) / mean(denominators), with the two-level bootstrap of
    ``from_rows``: seeds drawn with replacement, each drawn seed's numerator and denominator from normals with
    their standard errors (independently); resamples with a mean denominator <= 0 are left out."""
    num, den = np.asarray(numerators, dtype=float), np.asarray(denominators, dtype=float)
    se_num, se_den = np.asarray(se_numerators, dtype=float), np.asarray(se_denominators, dtype=float)
    if num.size == 0 or not (num.shape == den.shape == se_num.shape == se_den.shape) or den.mean() <= 0:
        raise RobustadError(f"ratio_from_rows: expected as many numerators as denominators with a positive mean, "
                            f"got {num.tolist()} and {den.tolist()}")
    _check(resamples, seed, level, num.size)
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, num.size, size=(resamples, num.size))
    top = (num[chosen] + se_num[chosen] * rng.standard_normal(chosen.shape)).mean(axis=1)
    bottom = (den[chosen] + se_den[chosen] * rng.standard_normal(chosen.shape)).mean(axis=1)
    ratios = np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1.0), np.nan)
    return summarise(ratios, float(num.mean() / den.mean()), level, False, None, num.size)
