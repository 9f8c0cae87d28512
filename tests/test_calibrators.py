"""The calibrator plugins against independent fits, hand examples and the entry-point registry."""

from __future__ import annotations

import numpy as np
import pytest
from robustad_plugins.calibrators import Isotonic, Platt, Temperature, Uncalibrated
from scipy.optimize import minimize

from robustad.errors import RobustadError
from robustad.plugins import PluginRegistry


def overlapping_scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Detector-like scores around 0.2 (small spread, as AnomalyDINO's are) with overlapping classes."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(int)
    return 0.2 + 0.03 * rng.normal(size=n) + 0.04 * labels, labels


def test_registered_through_the_entry_point():
    registry = PluginRegistry()
    registry.load_entry_points({"calibrators"})
    components = registry.components("calibrator")
    assert sorted(components) == ["isotonic", "none", "platt", "temperature"]
    assert {c.plugin for c in components.values()} == {"calibrators"}


@pytest.mark.parametrize("seed", [0, 1])
def test_platt_matches_a_direct_maximum_likelihood_fit(seed):
    scores, labels = overlapping_scores(120, seed)
    n_pos, n_neg = labels.sum(), (1 - labels).sum()
    targets = np.where(labels == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def negative_log_likelihood(params):
        p = 1 / (1 + np.exp(-(params[0] * scores + params[1])))
        return -np.sum(targets * np.log(p) + (1 - targets) * np.log(1 - p))

    reference = minimize(negative_log_likelihood, [1.0, 0.0], method="Nelder-Mead",
                         options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000, "maxfev": 40000})
    platt = Platt().fit(scores, labels)
    assert platt.slope == pytest.approx(reference.x[0], rel=1e-4)
    assert platt.intercept == pytest.approx(reference.x[1], rel=1e-4)
    grid = np.linspace(0.1, 0.35, 11)
    expected = 1 / (1 + np.exp(-(reference.x[0] * grid + reference.x[1])))
    np.testing.assert_allclose(platt.predict(grid), expected, atol=1e-6)


def test_platt_stays_finite_on_separable_calib():
    scores = np.array([0.10, 0.11, 0.12, 0.30, 0.31])
    labels = np.array([0, 0, 0, 1, 1])
    probs = Platt().fit(scores, labels).predict(scores)
    # smoothed targets: 1/(3+2) = 0.2 for normal, (2+1)/(2+2) = 0.75 for anomalous; the fit cannot reach 0 or 1
    assert np.all((probs > 0.05) & (probs < 0.95))
    assert np.all(np.diff(probs) > 0)


def test_isotonic_pools_adjacent_violators_and_clips():
    scores = np.array([1.0, 2.0, 3.0, 4.0])
    labels = np.array([0, 1, 0, 1])
    # PAV by hand: (1, 0) then (2, 1), (3, 0) violate order and pool to 0.5, then (4, 1).
    np.testing.assert_allclose(Isotonic().fit(scores, labels).predict(scores), [1e-6, 0.5, 0.5, 1 - 1e-6])


def test_isotonic_is_monotone_and_within_bounds_beyond_the_calib_range():
    scores, labels = overlapping_scores(200, 0)
    grid = np.linspace(scores.min() - 1, scores.max() + 1, 500)
    probs = Isotonic().fit(scores, labels).predict(grid)
    assert np.all(np.diff(probs) >= 0)
    assert probs.min() >= 1e-6 and probs.max() <= 1 - 1e-6


def test_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    t_true, tau_true = 0.02, 0.25
    scores = rng.uniform(0.0, 0.5, 20000)
    labels = (rng.random(scores.size) < 1 / (1 + np.exp(-(scores - tau_true) / t_true))).astype(int)
    calibrator = Temperature().fit(scores, labels)
    assert calibrator.temperature == pytest.approx(t_true, rel=0.1)
    assert calibrator.tau == pytest.approx(tau_true, abs=0.01)


def test_temperature_centres_on_the_f1_optimal_threshold():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    labels = np.array([0, 0, 1, 0, 1, 1])
    # score >= t for t = 0.3: TP 3, FP 1, FN 0 -> F1 6/7, the best of every threshold (0.5: 4/5, 0.1: 2/3 ...)
    calibrator = Temperature().fit(scores, labels)
    assert calibrator.tau == 0.3
    assert calibrator.predict(np.array([0.3]))[0] == pytest.approx(0.5)
    assert calibrator.temperature > 0


def test_uncalibrated_min_max_scales_on_calib():
    calibrator = Uncalibrated().fit(np.array([2.0, 4.0, 3.0]), np.array([0, 1, 1]))
    np.testing.assert_allclose(calibrator.predict(np.array([1.0, 2.0, 3.5, 4.0, 9.0])), [0, 0, 0.75, 1, 1])


def test_uncalibrated_constant_calib_scores_give_a_step():
    calibrator = Uncalibrated().fit(np.array([3.0, 3.0]), np.array([0, 0]))
    np.testing.assert_array_equal(calibrator.predict(np.array([2.0, 3.0, 4.0])), [0.0, 0.5, 1.0])


@pytest.mark.parametrize("calibrator", [Platt, Isotonic, Temperature])
def test_one_class_calib_is_an_error(calibrator):
    with pytest.raises(RobustadError, match="only class 1"):
        calibrator().fit(np.array([0.1, 0.2, 0.3]), np.array([1, 1, 1]))


def test_constant_calib_scores_leave_the_temperature_undetermined():
    with pytest.raises(RobustadError, match="all calib scores equal"):
        Temperature().fit(np.array([0.2, 0.2]), np.array([0, 1]))


@pytest.mark.parametrize("calibrator", [Platt, Isotonic, Temperature, Uncalibrated])
def test_predict_before_fit_and_bad_input_are_errors(calibrator):
    with pytest.raises(RobustadError, match="not fitted"):
        calibrator().predict(np.array([0.1]))
    with pytest.raises(RobustadError, match="labels has 2 entries but scores has 3"):
        calibrator().fit(np.array([0.1, 0.2, 0.3]), np.array([0, 1]))


@pytest.mark.parametrize("calibrator", [Platt, Isotonic, Temperature, Uncalibrated])
def test_probabilities_lie_in_the_unit_interval(calibrator):
    scores, labels = overlapping_scores(100, 3)
    fitted = calibrator().fit(scores, labels)
    probs = fitted.predict(np.concatenate([scores, [-100.0, 100.0]]))
    assert probs.dtype == np.float64 and np.all((probs >= 0) & (probs <= 1))
