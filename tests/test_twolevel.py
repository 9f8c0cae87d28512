"""The two-level bootstrap over seeds and images: a coverage simulation with a known between-seed variance, the
stratified draw, the Wilson interval at the boundary, and the interval from rows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from robustad import resampled
from robustad.errors import RobustadError
from robustad.twolevel import from_rows, paired_from_rows, stratified_counts, two_level, wilson

NORMAL, ANOMALOUS = 14, 45  # a bottle eval split


def one_level(labels, scores, resamples, rng, level=0.95):
    """The interval that ignores the seed draw: each seed's images resampled, the seeds held fixed."""
    total = sum(resampled.ranking_metrics(stratified_counts(y, resamples, rng), y, s)["auroc"]
                for y, s in zip(labels, scores))
    return np.percentile(total / len(labels), [50 * (1 - level), 50 * (1 + level)])


def test_two_level_covers_the_mean_over_seeds_where_the_one_level_interval_misses_it():
    """Seeds shift the anomalous scores by N(0, 0.6^2): the population mean AUROC over seeds is E Phi((1.5 + b) /
    sqrt 2) (quadrature), and only an interval that resamples the seeds covers it at about the nominal rate."""
    shift, between = 1.5, 0.6
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    truth = float(np.sum(weights * norm.cdf((shift + between * nodes) / np.sqrt(2))) / np.sqrt(2 * np.pi))
    rng = np.random.default_rng(1)
    labels = np.array([0] * NORMAL + [1] * ANOMALOUS)
    covered_two = covered_one = 0
    simulations, seeds = 80, 6
    for sim in range(simulations):
        effects = rng.normal(0, between, size=seeds)
        scores = [rng.normal(size=labels.size) + labels * (shift + e) for e in effects]
        estimate = float(np.mean([roc_auc_score(labels, s) for s in scores]))
        metric = lambda counts, s: resampled.ranking_metrics(counts, labels, scores[s])["auroc"]  # noqa: E731
        interval = two_level([labels] * seeds, metric, estimate, resamples=200, seed=sim)
        covered_two += interval.low <= truth <= interval.high
        low, high = one_level([labels] * seeds, scores, 200, rng)
        covered_one += low <= truth <= high
    assert covered_two / simulations >= 0.82  # 0.89 here; 95 % nominal, 6 seeds
    assert covered_one / simulations <= 0.65  # 0.58 here


def test_stratified_counts_keep_each_class_size_and_draw_only_within_it():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 0, 1])
    counts = stratified_counts(labels, 500, np.random.default_rng(0))
    assert np.all(counts[:, labels == 0].sum(axis=1) == 4) and np.all(counts[:, labels == 1].sum(axis=1) == 5)
    assert np.allclose(counts.mean(axis=0), 1.0, atol=0.15)  # each image drawn once on average


def test_the_interval_at_the_boundary_is_the_wilson_score_interval_not_a_point():
    """AUROC 0 on every seed and every resample: the percentile interval is [0, 0]; the Wilson bound of 0 of n
    units is z^2 / (n + z^2) (hand-computed), n = 3 seeds x 14 normal images."""
    labels = np.array([0] * NORMAL + [1] * ANOMALOUS)
    scores = -labels.astype(float)  # every anomalous image below every normal one
    metric = lambda counts, s: resampled.ranking_metrics(counts, labels, scores)["auroc"]  # noqa: E731
    interval = two_level([labels] * 3, metric, 0.0, resamples=200)
    z = norm.ppf(0.975)
    assert interval.boundary and interval.low == 0.0
    assert interval.high == pytest.approx(z * z / (42 + z * z))
    assert wilson(1.0, 42) == pytest.approx((1 - z * z / (42 + z * z), 1.0))


def test_wilson_matches_the_textbook_formula_inside_the_range():
    """7 of 20: centre (p + z^2/2n) / (1 + z^2/n), half-width z / (1 + z^2/n) sqrt(p(1-p)/n + z^2/4n^2)."""
    p, n, z = 0.35, 20, norm.ppf(0.975)
    centre = (p + z * z / 40) / (1 + z * z / 20)
    half = z / (1 + z * z / 20) * np.sqrt(p * (1 - p) / 20 + z * z / 1600)
    assert wilson(p, n) == pytest.approx((centre - half, centre + half))


def test_from_rows_with_no_image_noise_is_the_seed_bootstrap_of_the_values():
    values = np.array([0.5, 0.7, 0.6, 0.9])
    interval = from_rows(values, np.zeros(4), n_eff=200, resamples=2000, seed=3)
    chosen = np.random.default_rng(3).integers(0, 4, size=(2000, 4))
    expected = np.percentile(values[chosen].mean(axis=1), [2.5, 97.5])
    assert (interval.low, interval.high) == pytest.approx(tuple(expected))
    assert interval.estimate == pytest.approx(0.675)


def test_paired_difference_of_equal_values_is_not_significant_and_of_shifted_values_is():
    a = np.array([0.70, 0.72, 0.69])
    same = paired_from_rows(a, [0.05] * 3, a + 0.001, [0.05] * 3, seed=0)
    assert not same.excludes_zero() and same.p_value > 0.5
    apart = paired_from_rows(a, [0.01] * 3, a - 0.2, [0.01] * 3, seed=0)
    assert apart.excludes_zero() and apart.p_value < 0.01 and apart.estimate == pytest.approx(0.2)


@pytest.mark.parametrize("bad", [dict(values=[], ses=[]), dict(values=[0.5], ses=[-1.0]),
                                 dict(values=[float("nan")], ses=[0.1])])
def test_from_rows_refuses_bad_input_in_one_line(bad):
    with pytest.raises(RobustadError, match="from_rows"):
        from_rows(bad["values"], bad["ses"], n_eff=10)


def test_ratio_of_means_is_not_the_mean_of_ratios_and_its_interval_is_the_documented_draw():
    """Drops (0.47, 0.71, 0.27 of the issue's example as ratios): the ratio of means differs from the mean of ratios;
    with zero standard errors the interval is the seed bootstrap of the ratio of means, redrawn here by hand."""
    from robustad.twolevel import ratio_from_rows

    top, bottom = np.array([0.047, 0.142, 0.054]), np.array([0.1, 0.2, 0.2])
    share = ratio_from_rows(top, np.zeros(3), bottom, np.zeros(3), resamples=500, seed=4)
    assert share.estimate == pytest.approx(top.sum() / bottom.sum()) and share.estimate != pytest.approx(
        np.mean(top / bottom))
    rng = np.random.default_rng(4)
    chosen = rng.integers(0, 3, size=(500, 3))
    expected = np.percentile(top[chosen].mean(axis=1) / bottom[chosen].mean(axis=1), [2.5, 97.5])
    assert (share.low, share.high) == pytest.approx((min(expected[0], share.estimate), max(expected[1],
                                                                                         share.estimate)))
