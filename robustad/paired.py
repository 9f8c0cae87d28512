"""Paired tests of two detectors (or settings) on the same eval images: DeLong's test of an AUROC difference and
Holm's correction of many tests (docs/protocol.md section 6).

DeLong, DeLong & Clarke-Pearson (1988): with m anomalous and n normal images, each anomalous image i gets the
structural component V10_i = mean over normal j of psi(x_i, y_j) and each normal image j gets V01_j = mean over
anomalous i of psi(x_i, y_j), psi(x, y) = 1 if x > y, 1/2 if tied, else 0; their means are the AUROC. The
covariance of two AUROCs on the same images is S10 / m + S01 / n, S10 and S01 the sample covariances (ddof=1) of
the components. The components come from midranks (Sun & Xu 2014), not from the m x n comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata

from robustad.errors import RobustadError


@dataclass(frozen=True)
class DeLong:
    """AUROC of a and b, their difference a - b, its standard error and the two-sided p-value of no difference."""

    auroc_a: float
    auroc_b: float
    difference: float
    se: float
    p_value: float


def structural_components(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V10 per anomalous image, V01 per normal image) from midranks: the rank of an anomalous score among all
    scores less its rank among the anomalous ones counts the normal scores below it (ties counted 1/2)."""
    positive, negative = scores[labels == 1], scores[labels == 0]
    m, n = positive.size, negative.size
    overall = rankdata(np.concatenate([positive, negative]))
    v10 = (overall[:m] - rankdata(positive)) / n
    v01 = 1.0 - (overall[m:] - rankdata(negative)) / m
    return v10, v01


def delong(labels: object, scores_a: object, scores_b: object) -> DeLong:
    """DeLong's test that two detectors' AUROCs on the same images are equal."""
    y = np.asarray(labels).reshape(-1)
    a, b = (np.asarray(s, dtype=np.float64).reshape(-1) for s in (scores_a, scores_b))
    if not (a.shape == b.shape == y.shape) or not np.isin(y, (0, 1)).all():
        raise RobustadError(f"delong: expected labels in {{0, 1}} and two score arrays of the same length, got "
                            f"{y.size} labels and {a.size} and {b.size} scores")
    m, n = int(np.sum(y == 1)), int(np.sum(y == 0))
    if m < 2 or n < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise RobustadError(f"delong: needs finite scores and at least 2 images of each class, got {m} anomalous "
                            f"and {n} normal")
    (a10, a01), (b10, b01) = structural_components(y, a), structural_components(y, b)
    s10, s01 = np.cov(np.vstack([a10, b10])), np.cov(np.vstack([a01, b01]))
    contrast = np.array([1.0, -1.0])
    variance = float(contrast @ s10 @ contrast / m + contrast @ s01 @ contrast / n)
    difference = float(a10.mean() - b10.mean())
    if variance <= 0:  # identical rankings: no evidence of a difference
        return DeLong(float(a10.mean()), float(b10.mean()), difference, 0.0, 1.0 if difference == 0 else 0.0)
    se = float(np.sqrt(variance))
    return DeLong(float(a10.mean()), float(b10.mean()), difference, se, float(2 * norm.sf(abs(difference) / se)))


def holm(p_values: object, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down correction: (reject at family-wise level ``alpha``, adjusted p-values), in the input
    order. The k-th smallest p (from 0) is compared with alpha / (K - k) until the first that fails."""
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    if np.isnan(p).any() or ((p < 0) | (p > 1)).any():
        raise RobustadError(f"holm: expected p-values in [0, 1], got {p.tolist()}")
    order = np.argsort(p, kind="stable")
    k = p.size
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate((k - np.arange(k)) * p[order]))
    adjusted = np.empty(k)
    adjusted[order] = adjusted_sorted
    return adjusted <= alpha, adjusted
