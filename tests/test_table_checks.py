"""The statistics the generated README tables compute, against simulations and hand computation."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_conformal_fpr_check_has_the_mean_and_spread_of_simulated_splits():
    """6 normal calib images, 14 normal eval images, 5 splits, alpha 0.2: split-conformal decisions simulated on
    continuous scores; the mean of the 5 splits' FPRs has mean floor(0.2 x 7) / 7 and the standard deviation the
    check uses (its limit is the bound + 2 sd)."""
    fpr_check = runpy.run_path(str(REPO / "results/flags/tables.py"))["fpr_check"]
    bound, limit = fpr_check(0.2, 6, 14, 5)
    rng = np.random.default_rng(0)
    trials = 20000
    calib = np.sort(rng.normal(size=(trials, 5, 6)), axis=2)
    normal = rng.normal(size=(trials, 5, 14))
    at_or_above = 6 - (calib[..., None, :] < normal[..., None]).sum(axis=-1)
    decided = (1 + at_or_above) / 7 <= 0.2
    means = decided.mean(axis=2).mean(axis=1)
    assert bound == pytest.approx(1 / 7)
    assert means.mean() == pytest.approx(bound, abs=0.003)
    assert (limit - bound) / 2 == pytest.approx(means.std(), rel=0.05)
