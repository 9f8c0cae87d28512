"""Certified bounds of median smoothing (Chiang et al. 2020, "Detection as Regression"; docs/protocol.md section 10).

For a score f and Gaussian noise of standard deviation sigma, the p-th percentile of f(x + noise) moves, for every
perturbation of L2 norm at most r, only between the percentiles at Phi(Phi^-1(p) -+ r / sigma) of the clean image.
For the median (p = 1/2) these are the percentiles at Phi(-r / sigma) and Phi(+r / sigma). Each is estimated from
n draws by an order statistic with one-sided Clopper-Pearson confidence: the k-th smallest of n draws lies below
the q-quantile with probability P(Binomial(n, q) >= k), so the largest k where that is at least 1 - alpha gives a
lower bound, and symmetrically for the upper one. With too few draws no order statistic is confident enough and the
bound is -inf (or +inf).
"""

from __future__ import annotations

import numpy as np

from robustad.errors import RobustadError


def lower_index(n: int, q: float, alpha: float) -> int:
    """The largest k in 1..n with P(Binomial(n, q) >= k) >= 1 - alpha (the k-th smallest draw is then below the
    q-quantile with that probability); 0 when even k = 1 is not confident enough (the bound is -inf)."""
    from scipy.stats import binom

    ks = np.arange(1, n + 1)
    confident = ks[binom.sf(ks - 1, n, q) >= 1 - alpha]
    return int(confident.max()) if confident.size else 0


def upper_index(n: int, q: float, alpha: float) -> int:
    """The smallest k in 1..n with P(Binomial(n, q) <= k - 1) >= 1 - alpha (the k-th smallest draw is then above
    the q-quantile with that probability); n + 1 when even k = n is not confident enough (the bound is +inf)."""
    from scipy.stats import binom

    ks = np.arange(1, n + 1)
    confident = ks[binom.cdf(ks - 1, n, q) >= 1 - alpha]
    return int(confident.min()) if confident.size else n + 1


def median_bounds(draws: np.ndarray, sigma: float, radius: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Per image (rows of ``draws``, one score per Gaussian draw), a lower and an upper bound on the median-smoothed
    score that hold, each with probability at least 1 - alpha, for every L2 perturbation of norm at most
    ``radius``: the order statistics at the Clopper-Pearson indices of the quantiles Phi(-+ radius / sigma)."""
    from scipy.stats import norm

    check_certificate(sigma, radius, alpha)
    values = np.sort(np.asarray(draws, dtype=np.float64), axis=1)
    n = values.shape[1]
    low, high = lower_index(n, float(norm.cdf(-radius / sigma)), alpha), \
        upper_index(n, float(norm.cdf(radius / sigma)), alpha)
    rows = values.shape[0]
    lower = values[:, low - 1] if low >= 1 else np.full(rows, -np.inf)
    upper = values[:, high - 1] if high <= n else np.full(rows, np.inf)
    return lower, upper


def certified_auroc(labels: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float | None:
    """The AUROC with every normal image at its upper bound and every anomalous one at its lower bound: no L2
    attack of the certified radius can push the smoothed detector's AUROC below it (while the bounds hold). Infinite
    bounds rank below or above every finite one; None with one class."""
    from scipy.stats import rankdata

    from robustad.metrics import auroc

    labels = np.asarray(labels).reshape(-1)
    worst = np.where(labels == 1, lower, upper)
    return auroc(labels, rankdata(worst))  # ranks: the AUROC of the bounds, infinite ones included


def joint_alpha(alpha: float, bounds: int) -> float:
    """The probability that any of ``bounds`` bounds, each failing with probability at most ``alpha``, fails: at most
    bounds * alpha (Bonferroni; the union bound needs no independence), capped at 1."""
    return float(min(1.0, bounds * alpha))


def per_bound_alpha(joint: float, bounds: int) -> float:
    """The per-bound ``alpha`` (``--cert-alpha``) that gives a joint failure probability of at most ``joint`` over
    ``bounds`` bounds (one per eval image): joint / bounds."""
    if not 0 < joint < 1 or bounds < 1:
        raise RobustadError(f"per_bound_alpha: expected a joint alpha in (0, 1) and >= 1 bound, got {joint!r} and "
                            f"{bounds!r}")
    return joint / bounds


def check_certificate(sigma: float, radius: float, alpha: float) -> None:
    """Refuse a certificate that cannot be computed, in one line."""
    if not sigma > 0 or not np.isfinite(sigma):
        raise RobustadError(f"certificate: sigma={sigma!r}; expected the defense's noise level, a number > 0")
    if not radius > 0 or not np.isfinite(radius):
        raise RobustadError(f"--cert-radius {radius!r}: expected a number > 0 (an L2 radius)")
    if not 0 < alpha < 1:
        raise RobustadError(f"--cert-alpha {alpha!r}: expected a number in (0, 1), e.g. 0.001")
