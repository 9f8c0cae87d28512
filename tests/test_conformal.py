"""The conformal calibrator against brute-force rank counts, its finite-sample guarantee by simulation, BH step-up
by hand, and its row columns against the saved scores of a tiny run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from robustad_plugins.calibrators import Conformal

from robustad.declaration import Request
from robustad.engine.executors import run_local
from robustad.engine.progress import SilentReporter
from robustad.engine.request import build_cells
from robustad.engine.settings import RunSettings
from robustad.errors import RobustadError
from robustad.intervals import decision_intervals
from robustad.plugins import get_registry
from tests.test_runner import CountingPlugin


def brute_force_p_values(normal: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(1 + count of calib normal scores at or above s) / (n + 1), one score at a time."""
    return np.array([(1 + sum(1 for c in normal if c >= s)) / (len(normal) + 1) for s in scores])


def bh_step_up(p: np.ndarray, alpha: float) -> np.ndarray:
    """Benjamini-Hochberg by its definition: reject the k smallest, k the largest i with p_(i) <= i alpha / m."""
    m = p.size
    order = np.argsort(p)
    passing = [i for i in range(1, m + 1) if p[order[i - 1]] <= i * alpha / m]
    rejected = np.zeros(m, dtype=bool)
    if passing:
        rejected[order[:max(passing)]] = True
    return rejected


def test_p_values_are_the_rank_count_against_calib_normal_scores_only():
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=40), 1)  # rounded: ties between calib and test scores
    labels = (rng.random(40) < 0.3).astype(int)
    test = np.concatenate([np.round(rng.normal(size=30), 1), scores[:5], [-10.0, 10.0]])
    fitted = Conformal().fit(scores, labels)
    expected = brute_force_p_values(scores[labels == 0], test)
    np.testing.assert_allclose(fitted.p_values(test), expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(fitted.predict(test), 1 - expected, rtol=0, atol=1e-15)
    assert fitted.p_values(np.array([10.0]))[0] == 1 / ((labels == 0).sum() + 1)


@pytest.mark.parametrize("n, alpha, ties", [(24, 0.1, False), (19, 0.1, False), (30, 0.2, True)])
def test_false_positive_rate_on_exchangeable_normals_is_at_most_alpha(n, alpha, ties):
    """Calib normals and one test normal drawn i.i.d.: P(p <= alpha) = floor(alpha (n+1)) / (n+1) for continuous
    scores (at most that with ties), never above alpha beyond binomial noise."""
    trials = 20000
    rng = np.random.default_rng(1)
    draws = rng.normal(size=(trials, n + 1))
    if ties:
        draws = np.round(draws)
    decided = np.array([Conformal(alpha=alpha).fit(row[:n], np.zeros(n, dtype=int)).decide(row[n:])[0]
                        for row in draws])
    noise = 4 * np.sqrt(alpha * (1 - alpha) / trials)
    exact = np.floor(alpha * (n + 1)) / (n + 1)
    assert decided.mean() <= alpha + noise
    assert Conformal(alpha=alpha).fit(draws[0, :n], np.zeros(n, dtype=int)).fpr_bound == pytest.approx(exact)
    if not ties:
        assert abs(decided.mean() - exact) <= noise


def test_an_attack_that_lifts_normal_scores_voids_the_guarantee():
    rng = np.random.default_rng(2)
    calib = rng.normal(size=50)
    fitted = Conformal(alpha=0.1).fit(calib, np.zeros(50, dtype=int))
    assert fitted.decide(rng.normal(size=2000) + 1.5).mean() > 0.3


@pytest.mark.parametrize("alpha", [0.05, 0.2])
def test_benjamini_hochberg_matches_the_step_up_rule(alpha):
    rng = np.random.default_rng(3)
    calib = rng.normal(size=400)
    test = np.concatenate([rng.normal(size=40), rng.normal(size=20) + 3])
    fitted = Conformal(alpha=alpha, bh=True).fit(calib, np.zeros(400, dtype=int))
    expected = bh_step_up(brute_force_p_values(calib, test), alpha)
    np.testing.assert_array_equal(fitted.decide(test), expected)
    assert expected.sum() > 0  # the case decides something
    plain = Conformal(alpha=alpha).fit(calib, np.zeros(400, dtype=int)).decide(test)
    assert expected.sum() <= plain.sum()


@pytest.mark.parametrize("options, message", [
    ({"alpha": 0.0}, "option alpha=0.0: expected a number in (0, 1)"),
    ({"alpha": 1.5}, "option alpha=1.5: expected a number in (0, 1)"),
])
def test_bad_alpha_is_one_line(options, message):
    with pytest.raises(RobustadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Conformal(**options)


def test_all_anomalous_calib_is_one_line():
    with pytest.raises(RobustadError, match="all anomalous; p-values need normal calib images"):
        Conformal().fit(np.array([1.0, 2.0]), np.array([1, 1]))


def test_row_rates_match_the_saved_scores(tmp_path):
    registry = get_registry()
    if not registry.pm.has_plugin("counting"):
        registry.add(CountingPlugin(), "counting")
    request = Request(noise_control=False, dataset="demo", data_root=None, category="disc", shots="1", seeds="0",
                      backbone="counting", weights="", resolution="32", detector="anomalydino",
                      surrogate="score", attack="fgsm", eps="8/255", calib="conformal:0.2,platt",
                      calib_fraction=0.3, options=[])
    result = run_local(build_cells(request, registry),
                       RunSettings(pixel_metrics=False, resamples=100, save_scores=tmp_path / "scores"),
                       tmp_path / "board.csv", registry, SilentReporter(), lambda cell, row: None)
    rows = {row["calibrator"]: row for row in result.written}
    row = rows["conformal:0.2"]
    scores = pd.read_csv(tmp_path / "scores" / f"{row['cell_hash']}.csv")
    calib, evaluated = scores[scores.split == "calib"], scores[scores.split == "eval"]
    normal = calib.clean_score[calib.label == 0].to_numpy()
    labels = evaluated.label.to_numpy()
    assert row["conformal_alpha"] == 0.2
    n = normal.size  # the exact marginal bound by hand: floor(0.2 (n + 1)) / (n + 1)
    assert row["conformal_fpr_bound"] == pytest.approx(int(0.2 * (n + 1) + 1e-9) / (n + 1))
    assert row["conformal_guarantee"] == "marginal"
    for side in ("clean", "adv"):
        decided = brute_force_p_values(normal, evaluated[f"{side}_score"].to_numpy()) <= 0.2
        assert row[f"{side}_fpr_at_alpha"] == pytest.approx(decided[labels == 0].mean())
        assert row[f"{side}_tpr_at_alpha"] == pytest.approx(decided[labels == 1].mean())
        for rate in ("fpr", "tpr"):
            column = f"{side}_{rate}_at_alpha"
            assert row[f"{column}_ci_low"] <= row[column] <= row[f"{column}_ci_high"]
    assert "conformal_alpha" not in rows["platt"]


def test_decision_rate_intervals_are_percentiles_of_the_redrawn_rates():
    rng = np.random.default_rng(4)
    labels = (rng.random(30) < 0.4).astype(int)
    decided = rng.random(30) < np.where(labels == 1, 0.7, 0.2)
    result = decision_intervals(labels, {"adv": decided}, resamples=300, seed=9)
    draws = np.random.default_rng(9).integers(0, 30, size=(300, 30))  # the documented draw
    for column, cls in (("adv_fpr_at_alpha", 0), ("adv_tpr_at_alpha", 1)):
        rates = [decided[d][labels[d] == cls].mean() for d in draws if (labels[d] == cls).any()]
        np.testing.assert_allclose(result.bounds[column], np.percentile(rates, [2.5, 97.5]), rtol=1e-12)
        assert result.skipped[column] == 300 - len(rates)


@pytest.mark.parametrize("normal, alpha, degenerate", [(5, 0.1, True), (8, 0.1, True), (9, 0.1, False),
                                                       (3, 0.2, True), (4, 0.2, False)])
def test_too_few_normal_calib_images_for_alpha_is_degenerate_and_said(normal, alpha, degenerate):
    """The smallest p-value is 1 / (n + 1): above alpha, no image can be declared anomalous, however high its
    score (bottle's 1-shot split keeps 6 normal calib images, so alpha 0.1 can never decide)."""
    scores = np.concatenate([np.arange(normal, dtype=float), [100.0]])
    labels = np.array([0] * normal + [1])
    conformal = Conformal(alpha=alpha)
    if degenerate:
        with pytest.warns(UserWarning, match=f"smallest p-value is 1/{normal + 1}"):
            conformal.fit(scores, labels)
    else:
        conformal.fit(scores, labels)
    assert conformal.degenerate == degenerate == (1 / (normal + 1) > alpha)
    assert bool(conformal.decide(np.array([1e9]))[0]) == (not degenerate)
