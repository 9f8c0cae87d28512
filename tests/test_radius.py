"""The radius search on a linear detector whose minimal perturbation is known analytically, and the breaking eps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustad.errors import RobustadError
from robustad.radius import breaking_eps, median_radius, search


class Linear(torch.nn.Module):
    """score(x) = <w, x>; the surrogate's logits [-z/2, z/2] with z = score - threshold."""

    def __init__(self, weights: torch.Tensor, threshold: float) -> None:
        super().__init__()
        self.weights, self.threshold = weights, threshold

    def score(self, images: torch.Tensor) -> torch.Tensor:
        return (images.flatten(1) * self.weights.flatten()).sum(dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        z = self.score(images) - self.threshold
        return torch.stack([-z / 2, z / 2], dim=1)


def toy(seed: int = 0):
    """8 images of 3x4x4 pixels near 0.5 (no clipping at these radii), half normal; the threshold between."""
    generator = torch.Generator().manual_seed(seed)
    weights = torch.randn(3, 4, 4, generator=generator, dtype=torch.float64)
    images = 0.5 + 0.02 * torch.randn(8, 3, 4, 4, generator=generator, dtype=torch.float64)
    model = Linear(weights, 0.0)
    scores = model.score(images)
    middle = scores.sort().values[3:5]
    model.threshold = float(middle.mean())  # between the 4th and 5th score: no image sits on it
    labels = (scores > model.threshold).to(torch.int64)  # every image starts on its right side
    return model, images, labels


@pytest.mark.parametrize("norm, dual", [("linf", 1), ("l2", 2)])
def test_the_search_finds_the_analytic_minimal_perturbation_within_its_tolerance(norm, dual):
    """The smallest perturbation moving <w, x> to the threshold t has norm |<w, x> - t| / ||w||_q, q the dual
    norm (L1 for L-inf, L2 for L2); the search's radius lies in [that, that + tolerance]."""
    model, images, labels = toy()
    eps_max = 0.05 if norm == "linf" else 0.5
    found = search(model, model.score, images, labels, model.threshold, norm=norm, eps_max=eps_max,
                   refinements=8)
    margin = (model.score(images) - model.threshold).abs().numpy()
    exact = margin / np.linalg.norm(model.weights.flatten().numpy(), ord=dual)
    assert found.tolerance == pytest.approx(eps_max / 256)
    assert np.all(exact < eps_max)
    assert np.all(found.radii >= exact - 1e-9) and np.all(found.radii <= exact + found.tolerance + 1e-9)


def test_images_beyond_eps_max_are_censored_and_wrong_sided_ones_have_radius_zero():
    model, images, labels = toy(1)
    labels[0] = 1 - labels[0]  # a label the detector already gets wrong
    found = search(model, model.score, images, labels, model.threshold, eps_max=1e-6, refinements=3)
    assert found.radii[0] == 0.0 and np.isinf(found.radii[1:]).all()


def test_median_radius_and_its_interval_by_hand():
    radii = np.array([0.01, 0.02, 0.03, 0.04, np.inf])
    median, low, high = median_radius(radii, resamples=2000, seed=5)
    draws = np.random.default_rng(5).integers(0, 5, size=(2000, 5))
    medians = np.sort(np.median(radii[draws], axis=1))
    assert median == 0.03 and low == medians[int(np.floor(0.025 * 1999))] and high == medians[
        int(np.ceil(0.975 * 1999))]


def test_breaking_eps_interpolates_where_the_auroc_curve_crosses_one_half():
    """Clean 0.9, 0.7 at 2/255, 0.3 at 8/255: 0.5 is crossed halfway between 2/255 and 8/255."""
    assert breaking_eps(np.array([8 / 255, 2 / 255]), np.array([0.3, 0.7]), 0.9) == pytest.approx(5 / 255)
    assert breaking_eps(np.array([2 / 255]), np.array([0.6]), 0.9) == float("inf")
    assert breaking_eps(np.array([2 / 255]), np.array([0.0]), 1.0) == pytest.approx(1 / 255)


def test_bad_settings_are_one_line():
    model, images, labels = toy()
    with pytest.raises(RobustadError, match="norm 'l1'"):
        search(model, model.score, images, labels, 0.0, norm="l1")
    with pytest.raises(RobustadError, match="refinements 0"):
        search(model, model.score, images, labels, 0.0, refinements=0)


def test_each_ranking_line_gets_its_entrys_breaking_eps_over_the_eps_grid():
    import pandas as pd

    from robustad.results.entries import with_breaking_eps

    base = {"entry": "e1", "dataset": "d", "category": "c", "threat": "any", "calibrator": "platt",
            "clean_auroc_mean": 0.9}
    lines = pd.DataFrame([{**base, "eps": "2/255", "adv_auroc_mean": 0.7},
                          {**base, "eps": "8/255", "adv_auroc_mean": 0.3},
                          {**base, "entry": "e2", "eps": "8/255", "adv_auroc_mean": 0.6}])
    out = with_breaking_eps(lines)
    assert out["breaking_eps"].tolist() == [pytest.approx(5 / 255), pytest.approx(5 / 255), float("inf")]
