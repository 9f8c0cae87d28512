"""DeLong's test against the structural components computed by brute force, and Holm's correction by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from robustad.errors import RobustadError
from robustad.paired import delong, holm


def brute_force_delong(labels, a, b):
    """DeLong et al. (1988) as written: psi over every (anomalous, normal) pair, then the covariance formula."""
    def components(scores):
        positive, negative = scores[labels == 1], scores[labels == 0]
        psi = np.array([[1.0 if x > y else 0.5 if x == y else 0.0 for y in negative] for x in positive])
        return psi.mean(axis=1), psi.mean(axis=0)

    (a10, a01), (b10, b01) = components(a), components(b)
    m, n = a10.size, a01.size
    var = lambda u, v: np.sum((u - u.mean()) * (v - v.mean())) / (u.size - 1)  # noqa: E731
    variance = (var(a10, a10) + var(b10, b10) - 2 * var(a10, b10)) / m + \
        (var(a01, a01) + var(b01, b01) - 2 * var(a01, b01)) / n
    difference = a10.mean() - b10.mean()
    return difference, np.sqrt(variance), 2 * norm.sf(abs(difference) / np.sqrt(variance))


def test_delong_matches_the_brute_force_structural_components_with_ties():
    rng = np.random.default_rng(0)
    labels = np.array([0] * 14 + [1] * 45)
    a = np.round(rng.normal(size=59) + labels, 1)  # rounded: ties within and across classes
    b = np.round(a + rng.normal(scale=0.8, size=59), 1)
    result = delong(labels, a, b)
    difference, se, p = brute_force_delong(labels, a, b)
    assert result.auroc_a == pytest.approx(roc_auc_score(labels, a))
    assert result.auroc_b == pytest.approx(roc_auc_score(labels, b))
    assert (result.difference, result.se, result.p_value) == pytest.approx((difference, se, p))


def correlated_pair(rng, gap):
    """Two detectors' scores on 59 images (14 normal): b is a plus noise, with the anomalous scores of b moved so
    that the population AUROC of b is 0.1 below a's (``gap`` = True) or equal."""
    labels = np.array([0] * 14 + [1] * 45)
    latent = rng.normal(size=59)
    a = latent + labels * 2.9  # AUROC Phi(2.9 / sqrt 2) = 0.98
    b = latent + labels * (1.56 if gap else 2.9) + rng.normal(scale=0.3, size=59)  # Phi(1.56 / sqrt 2.09) = 0.86
    return labels, a, b


def test_a_true_auroc_difference_of_0_1_on_59_images_is_significant_and_noise_is_not():
    rng = np.random.default_rng(7)
    significant = [delong(*correlated_pair(rng, gap=True)).p_value < 0.05 for _ in range(40)]
    noise_only = [delong(*correlated_pair(rng, gap=False)).p_value < 0.05 for _ in range(40)]
    assert np.mean(significant) >= 0.8
    assert np.mean(noise_only) <= 0.15  # about the test's level, 0.05


def test_identical_rankings_give_p_one():
    labels = np.array([0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.4, 0.3, 0.8, 0.9])
    result = delong(labels, scores, 2 * scores + 1)
    assert result.difference == 0.0 and result.p_value == 1.0


def test_holm_by_hand():
    """p = 0.01, 0.04, 0.03, 0.005 at 0.05: sorted 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> 0.06 (the
    running maximum); rejected: the first two."""
    reject, adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert reject.tolist() == [True, False, False, True]


def test_holm_caps_at_one_and_refuses_nan():
    assert holm([0.6, 0.9])[1] == pytest.approx([1.0, 1.0])
    with pytest.raises(RobustadError, match="holm"):
        holm([0.1, float("nan")])


def test_delong_refuses_one_class_in_one_line():
    with pytest.raises(RobustadError, match="at least 2 images of each class"):
        delong([1, 1, 1, 0], [1, 2, 3, 4], [1, 2, 3, 5])
