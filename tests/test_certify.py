"""Certified bounds of median smoothing (issue 23): the order-statistic indices against a brute-force binomial sum,
their coverage by simulation, the interval against a Lipschitz score whose smoothed value is known at every
perturbation, and the certified AUROC against sklearn."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import numpy as np
import pytest
import torch
from robustad_plugins.defenses import Smoothing
from scipy.stats import binom, norm
from sklearn.metrics import roc_auc_score

from robustad.certify import certified_auroc, lower_index, median_bounds, upper_index
from robustad.errors import RobustadError


def at_least(n: int, q: float, k: int) -> float:
    """P(Binomial(n, q) >= k) summed term by term."""
    return sum(comb(n, j) * q ** j * (1 - q) ** (n - j) for j in range(k, n + 1))


@pytest.mark.parametrize("n", [1, 5, 16, 100, 400])
@pytest.mark.parametrize("q", [0.02, 0.1587, 0.3085, 0.5, 0.6915, 0.98])
@pytest.mark.parametrize("alpha", [0.001, 0.05])
def test_the_order_statistic_indices_match_a_brute_force_binomial_sum(n, q, alpha):
    confident_low = [k for k in range(1, n + 1) if at_least(n, q, k) >= 1 - alpha]
    assert lower_index(n, q, alpha) == (max(confident_low) if confident_low else 0)
    confident_high = [k for k in range(1, n + 1) if 1 - at_least(n, q, k) >= 1 - alpha]
    assert upper_index(n, q, alpha) == (min(confident_high) if confident_high else n + 1)
    assert float(binom.cdf(n, n, q)) == pytest.approx(1.0)  # the brute force sums a whole distribution


def test_the_bounds_are_the_order_statistics_at_those_indices():
    draws = np.random.default_rng(0).normal(size=(3, 100))
    lower, upper = median_bounds(draws, sigma=0.5, radius=0.25, alpha=0.001)
    ordered = np.sort(draws, axis=1)
    low, high = lower_index(100, norm.cdf(-0.5), 0.001), upper_index(100, norm.cdf(0.5), 0.001)
    assert 1 <= low < 50 < high <= 100
    assert np.array_equal(lower, ordered[:, low - 1]) and np.array_equal(upper, ordered[:, high - 1])
    assert (lower <= np.median(draws, axis=1)).all() and (np.median(draws, axis=1) <= upper).all()


def test_with_too_few_draws_the_bounds_are_infinite():
    lower, upper = median_bounds(np.zeros((2, 8)), sigma=0.25, radius=0.5, alpha=0.001)
    assert np.isneginf(lower).all() and np.isposinf(upper).all()
    # 0.999 confidence needs (1 - q)^n <= 0.001 for the smallest draw: q = Phi(-1) = 0.159 needs n >= 40
    lower, _ = median_bounds(np.zeros((1, 40)), sigma=0.25, radius=0.25, alpha=0.001)
    assert np.isfinite(lower).all()


def test_each_bound_misses_its_quantile_at_most_alpha_of_the_time():
    rng = np.random.default_rng(1)
    sigma, radius, alpha, trials = 1.0, 0.5, 0.05, 4000
    lower, upper = median_bounds(rng.normal(size=(trials, 60)), sigma, radius, alpha)
    assert np.mean(lower > norm.ppf(norm.cdf(-radius / sigma))) <= alpha + 0.01
    assert np.mean(upper < norm.ppf(norm.cdf(radius / sigma))) <= alpha + 0.01


def test_the_certified_interval_contains_the_smoothed_score_at_every_perturbation_tried():
    """f(x) = tanh(w . x) with ||w|| = 1 is 1-Lipschitz; the median commutes with the monotone tanh, so the
    median-smoothed score at x' is exactly tanh(w . x'), known at every perturbation."""
    generator = torch.Generator().manual_seed(2)
    x = torch.rand(1, 3, 6, 6, generator=generator, dtype=torch.float64)
    w = torch.randn(x.shape, generator=generator, dtype=torch.float64)
    w = w / w.norm()

    def score(images: torch.Tensor) -> float:
        return float(torch.tanh((images * w).sum() - 2.0))

    sigma, radius, samples = 0.5, 0.5, 2000
    smoothing = Smoothing(sigma=sigma, samples=samples)
    noise = torch.Generator().manual_seed(3)
    draws = np.array([[score(smoothing.transform(x, noise)) for _ in range(samples)]])
    lower, upper = median_bounds(draws, sigma, radius, alpha=0.001)
    directions = [w, -w, *(torch.randn(x.shape, generator=generator, dtype=torch.float64) for _ in range(50))]
    for direction in directions:
        for size in (radius, radius / 2):
            smoothed = score(x + size * direction / direction.norm())
            assert lower[0] <= smoothed <= upper[0]
    assert upper[0] - lower[0] < 2 * (score(x + radius * w) - score(x - radius * w))  # not vacuous


def test_the_certified_auroc_puts_normals_at_their_upper_and_anomalies_at_their_lower_bound():
    labels = np.array([0, 0, 0, 1, 1, 1])
    lower = np.array([0.0, 0.1, -np.inf, 0.2, -np.inf, 0.9])
    upper = np.array([0.5, np.inf, 0.3, 0.8, 0.7, 1.2])
    worst = np.array([0.5, 1e9, 0.3, 0.2, -1e9, 0.9])
    assert certified_auroc(labels, lower, upper) == pytest.approx(roc_auc_score(labels, worst))
    assert certified_auroc(labels, lower, upper) == pytest.approx(float(Fraction(2, 9)))  # 0.9 above 0.5 and 0.3 only


@pytest.mark.parametrize("sigma, radius, alpha, message", [
    (0.0, 0.5, 0.001, "sigma=0.0"), (0.25, -1.0, 0.001, "--cert-radius -1.0"), (0.25, 0.5, 1.0, "--cert-alpha 1.0"),
])
def test_a_certificate_that_cannot_be_computed_is_one_line(sigma, radius, alpha, message):
    with pytest.raises(RobustadError, match=message):
        median_bounds(np.zeros((1, 10)), sigma, radius, alpha)


def test_the_joint_level_is_the_union_bound_and_the_per_bound_alpha_inverts_it():
    """59 bounds at 0.001 each: all hold with probability at least 1 - 0.059 = 0.941 (the README's example); a joint
    0.05 over 59 images needs 0.05 / 59 per bound."""
    from robustad.certify import joint_alpha, per_bound_alpha

    assert joint_alpha(0.001, 59) == pytest.approx(0.059)
    assert joint_alpha(0.5, 59) == 1.0
    assert per_bound_alpha(0.05, 59) == pytest.approx(0.05 / 59)
    with pytest.raises(RobustadError, match="per_bound_alpha"):
        per_bound_alpha(1.5, 59)
