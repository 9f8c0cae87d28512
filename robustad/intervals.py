"""Seeded percentile-bootstrap intervals for every image and attack metric of a leaderboard row.

docs/protocol.md section 6: eval images are the resampling unit, and an image brings its clean and its adversarial
version together. Resample r draws the images ``np.random.default_rng(seed).integers(0, n, size=(resamples,
n))[r]``; a test can redraw them. A resample where a metric is undefined (one class only, ...) is skipped for
that metric and counted. The bounds are numpy's default ("linear") percentiles of the defined resample values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from robustad import metrics, resampled
from robustad.errors import RobustadError

Bounds = tuple[float | None, float | None]


@dataclass(frozen=True)
class Intervals:
    """``bounds[column] = (low, high)``, (None, None) when undefined in every resample; ``skipped[column]``: how
    many resamples left the metric undefined. Columns: ``clean_<m>``, ``adv_<m>`` and the attack metrics."""

    bounds: dict[str, Bounds]
    skipped: dict[str, int]

    def containing(self, values: Mapping[str, float | None]) -> Intervals:
        """The intervals widened just enough to hold each defined point estimate ``values[column]``.

        A percentile interval need not contain the estimate on the full eval set (bootstrap ECE is biased upward,
        and a point estimate from sklearn may differ from the resampled sums in the last bit), but a leaderboard
        promises low <= value <= high. Columns without a value keep their bounds.
        """
        bounds = dict(self.bounds)
        for column, (low, high) in self.bounds.items():
            value = values.get(column)
            if value is not None:
                bounds[column] = (value if low is None else min(low, value),
                                  value if high is None else max(high, value))
        return Intervals(bounds, dict(self.skipped))


def draw_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) image indices drawn with replacement: the documented draw every interval uses."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_intervals(labels: object, clean_scores: object, clean_probs: object, adv_scores: object = None,
                        adv_probs: object = None, *, flag_threshold: float | None = None,
                        flag_values: tuple[np.ndarray, np.ndarray] | None = None, resamples: int = 1000,
                        seed: int = 0, level: float = 0.95) -> Intervals:
    """Percentile intervals at ``level`` for the ``clean_*`` image metrics and, given adversarial scores and
    probabilities of the same images in the same order, the ``adv_*`` ones and ``flag_auroc``; ``flag_tpr`` and
    ``evasion_rate`` also need the entropy ``flag_threshold`` (``metrics.flag_threshold`` of the clean calib
    probabilities). ``flag_values``, the (clean, adversarial) values of another flag statistic, replaces the
    entropy: ``flag_threshold`` is then that flag's. Columns that cannot be computed from the arguments are absent."""
    context = "bootstrap_intervals"
    y = metrics.check_labels(labels, context)
    _check_settings(resamples, seed, level)
    clean = _scores_and_probs(context, "clean", clean_scores, clean_probs, y.size)
    if (adv_scores is None) != (adv_probs is None):
        raise RobustadError(f"{context}: pass both adv_scores and adv_probs, or neither")
    adv = None if adv_probs is None else _scores_and_probs(context, "adv", adv_scores, adv_probs, y.size)
    if flag_values is not None:
        flag_values = tuple(metrics.check_values(v, context, name="flag values", length=y.size) for v in flag_values)
    flagged = None if adv is None or flag_threshold is None else metrics.flagged(adv[1], flag_threshold, context) \
        if flag_values is None else flag_values[1] > flag_threshold

    counts = resampled.counts_of(draw_indices(y.size, resamples, seed), y.size)
    values = {f"clean_{name}": v for name, v in resampled.image_metrics(counts, y, *clean).items()}
    if adv is not None:
        values.update({f"adv_{name}": v for name, v in resampled.image_metrics(counts, y, *adv).items()})
        values["flag_auroc"] = resampled.flag_auroc(counts, clean[1], adv[1]) if flag_values is None \
            else resampled.statistic_auroc(counts, *flag_values)
    if flagged is not None:
        values["flag_tpr"] = resampled.flag_tpr(counts, flagged)
        values["evasion_rate"] = resampled.evasion_rate(counts, y, adv[1], flagged)
    return _percentiles(values, resamples, level)


def decision_intervals(labels: object, decided: dict[str, np.ndarray], *, resamples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> Intervals:
    """Percentile intervals of a calibrator's decision rates, ``<side>_fpr_at_alpha`` and ``<side>_tpr_at_alpha``
    for each ``side`` (``clean``, ``adv``) of ``decided`` (booleans per eval image), over the same image draws as
    ``bootstrap_intervals`` with the same seed."""
    context = "decision_intervals"
    y = metrics.check_labels(labels, context)
    _check_settings(resamples, seed, level)
    counts = resampled.counts_of(draw_indices(y.size, resamples, seed), y.size)
    values = {}
    for side, flags in decided.items():
        array = np.asarray(flags)
        if array.shape != y.shape or array.dtype != bool:
            raise RobustadError(f"{context}: {side} decisions must be {y.size} booleans, got {array.dtype} of shape "
                                f"{array.shape}")
        values.update({f"{side}_{name}": v for name, v in resampled.decision_rates(counts, y, array).items()})
    return _percentiles(values, resamples, level)


def certificate_intervals(labels: object, worst: np.ndarray, *, resamples: int = 1000, seed: int = 0,
                          level: float = 0.95) -> Intervals:
    """The percentile interval of ``cert_auroc``, the AUROC of each eval image's worst certified bound ``worst``
    (the lower bound of an anomalous image, the upper bound of a normal one; infinite bounds allowed), over the same
    image draws as ``bootstrap_intervals`` with the same seed. The bounds stay fixed per image: the interval is the
    spread over which images are drawn, not over the bounds' own failure probability (that is ``cert_alpha``)."""
    from scipy.stats import rankdata

    y = metrics.check_labels(labels, "certificate_intervals")
    _check_settings(resamples, seed, level)
    counts = resampled.counts_of(draw_indices(y.size, resamples, seed), y.size)
    ranks = rankdata(np.asarray(worst, dtype=np.float64))  # ranks: infinite bounds order like any other value
    return _percentiles({"cert_auroc": resampled.ranking_metrics(counts, y, ranks)["auroc"]}, resamples, level)


def _percentiles(values: dict[str, np.ndarray], resamples: int, level: float) -> Intervals:
    tails = (50 * (1 - level), 50 * (1 + level))
    bounds, skipped = {}, {}
    for column, per_resample in values.items():
        defined = per_resample[~np.isnan(per_resample)]
        skipped[column] = resamples - defined.size
        bounds[column] = tuple(float(b) for b in np.percentile(defined, tails)) if defined.size else (None, None)
    return Intervals(bounds, skipped)


def _check_settings(resamples: int, seed: int, level: float) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 1:
        raise RobustadError(f"bootstrap_intervals: resamples must be an integer >= 1, got {resamples!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise RobustadError(f"bootstrap_intervals: seed must be an integer >= 0, got {seed!r}")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 < level < 1.0:
        raise RobustadError(f"bootstrap_intervals: level must be a number in (0, 1), got {level!r}")


def _scores_and_probs(context: str, prefix: str, scores: object, probs: object,
                      n: int) -> tuple[np.ndarray, np.ndarray]:
    return (metrics.check_values(scores, context, name=f"{prefix}_scores", length=n),
            metrics.check_values(probs, context, name=f"{prefix}_probs", length=n, probabilities=True))
