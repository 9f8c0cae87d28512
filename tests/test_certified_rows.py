"""Certified rows end to end on a tiny backbone (issue 23): ``--cert-radius`` cells, the per-draw scores the engine
certifies from, and the row's ``cert_auroc`` against numpy, scipy and sklearn; the one-line refusals."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import binom, norm
from sklearn.metrics import roc_auc_score

from robustad.declaration import Request
from robustad.engine.clean import run_clean_stage
from robustad.engine.executors import run_local
from robustad.engine.progress import SilentReporter
from robustad.engine.request import build_cells
from robustad.engine.settings import RunSettings
from robustad.errors import RobustadError
from robustad.plugins import get_registry
from robustad.results.leaderboard import read_rows
from tests.test_engine_faults import FaultyPlugins
from tests.test_request import folder_dataset

SIGMA, SAMPLES = 0.25, 60


@pytest.fixture
def registry():
    registry = get_registry()
    if not registry.pm.has_plugin("faulty"):
        registry.add(FaultyPlugins(), "faulty", "robustad-faulty")
    return registry


@pytest.fixture
def request_of(tmp_path):
    root = folder_dataset(tmp_path / "data")
    return Request(noise_control=False, dataset="folder", data_root=root, category="part", shots="1", seeds="0",
                   backbone="tiny_ok", weights="", resolution="32", detector="anomalydino",
                   surrogate="score", attack="none", eps="0.5", calib="platt", calib_fraction=0.3,
                   options=[f"defense.smoothing.samples={SAMPLES}", f"defense.smoothing.sigma={SIGMA}"],
                   defense="smoothing", cert_radius="0.25,0.5,0.25")


def brute_force_auroc(draws: np.ndarray, labels: np.ndarray, radius: float, alpha: float) -> float:
    """Order statistics at the brute-force binomial indices, then sklearn on the bounds (infinite ones clipped
    beyond every score, which keeps the ranking)."""
    n = draws.shape[1]
    ordered = np.sort(draws, axis=1)
    q_low, q_high = norm.cdf(-radius / SIGMA), norm.cdf(radius / SIGMA)
    low = max([k for k in range(1, n + 1) if 1 - binom.cdf(k - 1, n, q_low) >= 1 - alpha], default=0)
    high = min([k for k in range(1, n + 1) if binom.cdf(k - 1, n, q_high) >= 1 - alpha], default=n + 1)
    lower = ordered[:, low - 1] if low else np.full(len(labels), -1e12)
    upper = ordered[:, high - 1] if high <= n else np.full(len(labels), 1e12)
    return float(roc_auc_score(labels, np.where(labels == 1, lower, upper)))


def test_certified_rows_hold_the_certified_auroc_of_the_draws_the_engine_aggregated(tmp_path, registry, request_of):
    cells = build_cells(request_of, registry)
    certified = [c for c in cells if c.cert_radius]
    assert sorted(c.cert_radius for c in certified) == ["1/2", "1/4"] and len(cells) == 3
    assert all(c.attack == "none" and c.cert_alpha == 0.001 for c in certified)
    settings = RunSettings(data_root=request_of.data_root, pixel_metrics=False, resamples=0)
    out = tmp_path / "board.csv"
    result = run_local(cells, settings, out, registry, SilentReporter(), lambda cell, row: None)
    assert not result.failures, result.failures
    rows = {r["cert_radius"]: r for r in read_rows(out)}
    stage = run_clean_stage(certified[0], settings, registry, SilentReporter(), keep_features=False)
    draws, labels = stage.eval_draws, stage.eval_labels
    assert draws.shape == (len(labels), SAMPLES)
    assert np.allclose(np.median(draws, axis=1), stage.eval_scores)  # the draws the smoothed score is made of
    for radius, text in ((0.25, "1/4"), (0.5, "1/2")):
        assert float(rows[text]["cert_auroc"]) == pytest.approx(brute_force_auroc(draws, labels, radius, 0.001))
        assert float(rows[text]["cert_sigma"]) == SIGMA and rows[text]["defense_samples"] == str(SAMPLES)
        assert float(rows[text]["cert_joint_alpha"]) == pytest.approx(len(labels) * 0.001)  # Bonferroni, by hand
    # 60 draws certify radius 1/4 (q = Phi(-1) needs 40 at alpha 0.001) but not 1/2 (q = Phi(-2) needs 300)
    assert float(rows["1/4"]["cert_infinite"]) == 0.0 and float(rows["1/2"]["cert_infinite"]) == 1.0
    assert float(rows["1/2"]["cert_auroc"]) == 0.0
    assert rows[""]["cert_auroc"] == "" and float(rows["1/4"]["cert_auroc"]) <= float(rows[""]["clean_auroc"])


@pytest.mark.parametrize("changes, message", [
    ({"defense": "gaussian"}, "--cert-radius 1/4,1/2: no defense of --defense gaussian can be certified"),
    ({"cert_alpha": 1.5}, "--cert-alpha 1.5: expected a number in (0, 1)"),
    ({"cert_radius": "0.5,0"}, "--cert-radius '0': expected an L2 radius in (0, 1000]"),
    ({"cert_radius": "x"}, "--cert-radius 'x'"),
])
def test_a_certificate_that_cannot_be_made_is_refused_in_one_line(registry, request_of, changes, message):
    with pytest.raises(RobustadError) as error:
        build_cells(replace(request_of, **changes), registry)
    assert message in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_without_cert_radius_the_cells_and_keys_are_unchanged(registry, request_of):
    plain = build_cells(replace(request_of, cert_radius=""), registry)
    assert [c.key for c in plain] == [c.key for c in build_cells(request_of, registry) if not c.cert_radius]
