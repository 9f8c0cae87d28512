"""The calibrator plugins against independent fits, hand examples and the entry-point registry."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from robustad_plugins.calibrators import Isotonic, Platt, Temperature, Uncalibrated
from scipy.optimize import minimize

from robustad import metrics
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
    assert sorted(components) == ["conformal", "isotonic", "none", "platt", "temperature"]
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
    # score >= t for t = 0.3: TP 3, FP 1, FN 0 -> F1 6/7, the best of every threshold (0.5: 4/5, 0.1: 2/3 ...);
    # tau sits midway between 0.3 and the next lower calib score 0.2
    calibrator = Temperature().fit(scores, labels)
    assert calibrator.tau == pytest.approx(0.25, abs=1e-15)
    assert calibrator.predict(np.array([0.25]))[0] == pytest.approx(0.5)
    assert calibrator.temperature > 0 and not calibrator.degenerate


SEPARATED_SCORES = np.array([0.10, 0.11, 0.12, 0.30, 0.31])
SEPARATED_LABELS = np.array([0, 0, 0, 1, 1])


def test_temperature_on_separated_calib_is_degenerate_and_says_so():
    with pytest.warns(UserWarning, match="calibrator 'temperature': tau = 0.21 separates the 5 calib scores"):
        calibrator = Temperature().fit(SEPARATED_SCORES, SEPARATED_LABELS)
    assert calibrator.degenerate
    assert calibrator.tau == pytest.approx(0.21, abs=1e-15)  # midway between 0.12 and 0.30
    assert calibrator.temperature == pytest.approx(SEPARATED_SCORES.std() / 1e6)  # the lower bound of the search
    probs = calibrator.predict(SEPARATED_SCORES)
    np.testing.assert_array_equal(probs, [0, 0, 0, 1, 1])
    assert metrics.entropy(probs) == 0.0


def test_temperature_on_overlapping_calib_is_not_degenerate():
    scores, labels = overlapping_scores(120, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calibrator = Temperature().fit(scores, labels)
    assert not calibrator.degenerate
    assert calibrator.temperature > 1000 * scores.std() / 1e6
    assert 0 < metrics.entropy(calibrator.predict(scores)) < np.log(2)


def test_temperature_with_platt_targets_stays_finite_on_separated_calib():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calibrator = Temperature(targets="platt").fit(SEPARATED_SCORES, SEPARATED_LABELS)
    assert not calibrator.degenerate
    # Platt's targets: 1/(3 + 2) = 0.2 for the normal images, (2 + 1)/(2 + 2) = 0.75 for the anomalous ones;
    # the NLL over a fine grid of T (tau = 0.21 fixed) has its minimum where the fit ends
    targets = np.array([0.2, 0.2, 0.2, 0.75, 0.75])
    grid = np.logspace(-4, 0, 40001)
    z = (SEPARATED_SCORES[None, :] - 0.21) / grid[:, None]
    nll = np.mean(targets * np.logaddexp(0, -z) + (1 - targets) * np.logaddexp(0, z), axis=1)  # -ln s(z), -ln s(-z)
    assert calibrator.temperature == pytest.approx(grid[np.argmin(nll)], rel=1e-3)
    assert metrics.entropy(calibrator.predict(SEPARATED_SCORES)) > 0.1


def test_temperature_targets_option_is_registered_and_checked():
    registry = PluginRegistry()
    registry.load_entry_points({"calibrators"})
    option, = registry.components("calibrator")["temperature"].options
    assert (option.name, option.type, option.default) == ("targets", str, "hard")
    with pytest.raises(RobustadError, match=r"option targets='soft': expected one of hard, platt") as error:
        Temperature(targets="soft")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("calibrator", [Platt, Isotonic, Uncalibrated])
def test_other_calibrators_are_never_degenerate(calibrator):
    assert calibrator().fit(SEPARATED_SCORES, SEPARATED_LABELS).degenerate is False


def test_calibrators_module_loads_without_scipy_or_sklearn():
    code = ("import sys, robustad_plugins.calibrators; "
            "print(sorted({'scipy', 'sklearn'} & set(sys.modules)))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


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
