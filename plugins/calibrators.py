"""Calibrators (docs/protocol.md section 5): map a raw detector score s to p = P(anomalous | s).

Each is fitted on the clean calib scores only and then applied to clean and adversarial eval scores. After ``fit``,
``degenerate`` says whether the fit ran to a bound and gives 0/1 probabilities (``temperature``), or whether too
few normal calib images leave no p-value at or below ``alpha`` (``conformal``).
``conformal`` also makes a decision with an error guarantee: ``alpha`` and ``decide`` (docs/protocol.md section 5).
scipy and scikit-learn are imported where they are used, so that listing plugins stays fast.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.metrics import check_labels, check_values, f1_optimal_threshold, require_both_classes

if TYPE_CHECKING:
    from sklearn.isotonic import IsotonicRegression

ISOTONIC_CLIP = 1e-6
TEMPERATURE_RANGE = 1e6  # T is searched within [spread / 1e6, spread * 1e6], spread = std of the calib scores
TEMPERATURE_TARGETS = ("hard", "platt")


def _fit_inputs(name: str, scores: object, labels: object, *, both_classes: bool) -> tuple[np.ndarray, np.ndarray]:
    y = check_labels(labels, f"calibrator {name!r}")
    s = check_values(scores, f"calibrator {name!r}", length=y.size)
    if both_classes:
        require_both_classes(y, f"calibrator {name!r}", "fitting needs normal and anomalous calib images")
    return s, y


def _predict_input(name: str, scores: object, fitted: bool) -> np.ndarray:
    if not fitted:
        raise RobustadError(f"calibrator {name!r} is not fitted; call fit(scores, labels) first")
    return check_values(scores, f"calibrator {name!r}")


def _spread(s: np.ndarray) -> float:
    """Standard deviation of the scores, or 1 when they are constant (keeps the optimisers well scaled)."""
    std = float(s.std())
    return std if std > 0 else 1.0


def platt_targets(labels: np.ndarray) -> np.ndarray:
    """Platt's smoothed targets: (N+ + 1) / (N+ + 2) for anomalous, 1 / (N- + 2) for normal images."""
    n_positive = int(labels.sum())
    n_negative = labels.size - n_positive
    return np.where(labels == 1, (n_positive + 1) / (n_positive + 2), 1 / (n_negative + 2))


def _logistic_loss(z: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-sample cross-entropy of sigmoid(z) against soft targets, computed stably."""
    return np.logaddexp(0.0, z) - targets * z


class Platt:
    """Platt scaling: p = sigmoid(a*s + b), maximum likelihood on Platt's smoothed targets."""

    name = "platt"
    description = "Platt scaling: sigmoid(a*s + b) fitted by maximum likelihood with Platt's smoothed targets"
    degenerate = False  # smoothed targets keep the fit finite

    def __init__(self) -> None:
        self.slope: float | None = None
        self.intercept: float | None = None

    def fit(self, scores: np.ndarray, labels: np.ndarray) -> Platt:
        """Convex fit with BFGS on standardised scores; smoothed targets keep it finite even on separable calib."""
        from scipy.optimize import minimize
        from scipy.special import expit

        s, y = _fit_inputs(self.name, scores, labels, both_classes=True)
        centre, spread = float(s.mean()), _spread(s)
        x = (s - centre) / spread
        targets = platt_targets(y)

        def loss_and_gradient(params: np.ndarray) -> tuple[float, np.ndarray]:
            z = params[0] * x + params[1]
            residual = expit(z) - targets
            return float(_logistic_loss(z, targets).mean()), np.array([np.mean(residual * x), np.mean(residual)])

        start = np.array([0.0, np.log(targets.mean() / (1.0 - targets.mean()))])
        result = minimize(loss_and_gradient, start, jac=True, method="BFGS", options={"gtol": 1e-10})
        slope, intercept = result.x
        self.slope = float(slope / spread)
        self.intercept = float(intercept - slope * centre / spread)
        return self

    def predict(self, scores: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        s = _predict_input(self.name, scores, self.slope is not None)
        return expit(self.slope * s + self.intercept)


class Isotonic:
    """Isotonic regression: a non-decreasing step fit of the labels, clipped to [1e-6, 1 - 1e-6]."""

    name = "isotonic"
    description = "isotonic regression (monotone step fit), clipped to [1e-6, 1-1e-6]"
    degenerate = False  # a step fit has no bound to run to; the clip keeps p off 0 and 1

    def __init__(self) -> None:
        self.model: IsotonicRegression | None = None

    def fit(self, scores: np.ndarray, labels: np.ndarray) -> Isotonic:
        from sklearn.isotonic import IsotonicRegression

        s, y = _fit_inputs(self.name, scores, labels, both_classes=True)
        self.model = IsotonicRegression(y_min=ISOTONIC_CLIP, y_max=1.0 - ISOTONIC_CLIP, increasing=True,
                                        out_of_bounds="clip").fit(s, y.astype(np.float64))
        return self

    def predict(self, scores: np.ndarray) -> np.ndarray:
        s = _predict_input(self.name, scores, self.model is not None)
        return np.clip(self.model.predict(s), ISOTONIC_CLIP, 1.0 - ISOTONIC_CLIP)


class Temperature:
    """Temperature scaling around the calib threshold: p = sigmoid((s - tau) / T)."""

    name = "temperature"
    primary_option = "targets"  # what temperature:VALUE sets
    description = ("sigmoid((s - tau)/T): tau = calib F1-optimal threshold, T > 0 fitted by NLL "
                   "on hard labels or Platt's smoothed targets")

    def __init__(self, *, targets: str = "hard") -> None:
        """``targets``: ``hard`` (the 0/1 labels: plain maximum likelihood, docs/protocol.md section 5) or ``platt``
        (Platt's smoothed targets, as ``platt`` uses: T stays finite even on perfectly separated calib data)."""
        if targets not in TEMPERATURE_TARGETS:
            raise RobustadError(f"calibrator {self.name!r} option targets={targets!r}: expected one of "
                                f"{', '.join(TEMPERATURE_TARGETS)}")
        self.targets = targets
        self.tau: float | None = None
        self.temperature: float | None = None
        self.degenerate = False

    def fit(self, scores: np.ndarray, labels: np.ndarray) -> Temperature:
        """tau from ``f1_optimal_threshold``; log T by bounded Brent search of the calib NLL.

        The NLL is convex in 1/T, hence unimodal in log T. With hard targets on calib scores that tau separates
        (no image on the wrong side) it keeps falling as T -> 0 and has no minimum: T is then set to its lower
        bound, spread / 1e6, p is 0 or 1 and H(p) = 0, so ``degenerate`` is True and a UserWarning says so.
        Smoothed targets always have a finite minimum. Constant calib scores leave T undetermined: a RobustadError.
        """
        from scipy.optimize import minimize_scalar

        s, y = _fit_inputs(self.name, scores, labels, both_classes=True)
        if s.min() == s.max():
            raise RobustadError(f"calibrator {self.name!r}: all calib scores equal {s[0]}; T cannot be fitted")
        tau = f1_optimal_threshold(y, s)
        offset = s - tau
        targets = platt_targets(y) if self.targets == "platt" else y
        log_spread, log_range = np.log(_spread(s)), np.log(TEMPERATURE_RANGE)
        self.degenerate = self.targets == "hard" and bool(np.all(np.where(y == 1, offset, -offset) >= 0))
        if self.degenerate:
            log_t = log_spread - log_range
        else:
            def mean_nll(log_t: float) -> float:
                return float(_logistic_loss(offset * np.exp(-log_t), targets).mean())

            log_t = minimize_scalar(mean_nll, bounds=(log_spread - log_range, log_spread + log_range),
                                    method="bounded", options={"xatol": 1e-8}).x
        self.tau, self.temperature = tau, float(np.exp(log_t))
        if self.degenerate:
            warnings.warn(f"calibrator {self.name!r}: tau = {tau:.6g} separates the {y.size} calib scores "
                          f"perfectly, so the NLL has no minimum; T is set to its lower bound {self.temperature:.3g}, "
                          "probabilities are 0 or 1 and the entropy flag means nothing (targets=platt keeps T finite)",
                          UserWarning, stacklevel=2)
        return self

    def predict(self, scores: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        s = _predict_input(self.name, scores, self.temperature is not None)
        return expit((s - self.tau) / self.temperature)


class Uncalibrated:
    """The uncalibrated baseline: scores min-max scaled on calib, clipped to [0, 1].

    Constant calib scores c define a step at c: p = 0 below, 0.5 at, 1 above (the limit of min-max scaling on a
    shrinking range around c). Labels are not used, so one-class calib data are fine here.
    """

    name = "none"
    description = "uncalibrated baseline: raw scores min-max scaled on calib and clipped to [0,1]"
    degenerate = False  # nothing is fitted

    def __init__(self) -> None:
        self.low: float | None = None
        self.high: float | None = None

    def fit(self, scores: np.ndarray, labels: np.ndarray) -> Uncalibrated:
        s, _ = _fit_inputs(self.name, scores, labels, both_classes=False)
        self.low, self.high = float(s.min()), float(s.max())
        return self

    def predict(self, scores: np.ndarray) -> np.ndarray:
        s = _predict_input(self.name, scores, self.low is not None)
        if self.high == self.low:
            return np.where(s > self.low, 1.0, np.where(s < self.low, 0.0, 0.5))
        return np.clip((s - self.low) / (self.high - self.low), 0.0, 1.0)


class Conformal:
    """Split-conformal p-values against the clean calib normal scores (Vovk et al. 2005; Bates et al. 2023):
    p(s) = (1 + #{calib normal scores >= s}) / (n + 1). On exchangeable clean normal images P(p <= alpha) <= alpha,
    so the decision p <= ``alpha`` has a false-positive rate of at most ``alpha``; ``bh`` decides by
    Benjamini-Hochberg adjusted p-values over the scored set instead (false discovery rate at most ``alpha``).
    ``predict`` gives 1 - p: a conformal confidence, not a calibrated probability."""

    name = "conformal"
    primary_option = "alpha"  # what conformal:VALUE sets
    description = ("split-conformal p-values against the calib normal scores; anomalous at p <= alpha "
                   "(bh=true: Benjamini-Hochberg over the scored set); predict gives 1 - p")
    def __init__(self, *, alpha: float = 0.1, bh: bool = False) -> None:
        if not 0.0 < alpha < 1.0:
            raise RobustadError(f"calibrator {self.name!r} option alpha={alpha!r}: expected a number in (0, 1)")
        self.alpha = alpha
        self.bh = bh
        self.normal: np.ndarray | None = None
        self.degenerate = False
        self.fpr_bound: float | None = None  # the exact marginal bound once fitted (``exact_fpr_bound``)

    def fit(self, scores: np.ndarray, labels: np.ndarray) -> Conformal:
        """Keep the sorted scores of the normal calib images (the anomalous ones are not used)."""
        s, y = _fit_inputs(self.name, scores, labels, both_classes=False)
        if not (y == 0).any():
            raise RobustadError(f"calibrator {self.name!r}: the {y.size} calib images are all anomalous; "
                                "p-values need normal calib images")
        self.normal = np.sort(s[y == 0])
        self.fpr_bound = None if self.bh else exact_fpr_bound(self.alpha, self.normal.size)
        smallest = 1.0 / (self.normal.size + 1.0)
        self.degenerate = smallest > self.alpha
        if self.degenerate:
            warnings.warn(f"calibrator {self.name!r}: with {self.normal.size} normal calib images the smallest p-value "
                          f"is 1/{self.normal.size + 1} = {smallest:.3f} > alpha {self.alpha:g}, so no image can be "
                          f"declared anomalous; it takes at least {int(np.ceil(1.0 / self.alpha)) - 1} normal calib "
                          "images (more calib, or a larger alpha)", UserWarning, stacklevel=2)
        return self

    def p_values(self, scores: np.ndarray) -> np.ndarray:
        """(1 + #{calib normal scores >= s}) / (n + 1) per score: small when s is above most normal scores."""
        s = _predict_input(self.name, scores, self.normal is not None)
        at_or_above = self.normal.size - np.searchsorted(self.normal, s, side="left")
        return (1.0 + at_or_above) / (self.normal.size + 1.0)

    def predict(self, scores: np.ndarray) -> np.ndarray:
        return 1.0 - self.p_values(scores)

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """True where the image is declared anomalous: p <= alpha, or BH-adjusted p <= alpha over ``scores``."""
        p = self.p_values(scores)
        if self.bh:
            from scipy.stats import false_discovery_control

            p = false_discovery_control(p, method="bh")
        return p <= self.alpha


def exact_fpr_bound(alpha: float, n: int) -> float:
    """P(p <= alpha) for a clean normal image exchangeable with ``n`` normal calib images (continuous scores):
    floor(alpha (n + 1)) / (n + 1), at most alpha. Marginal: over the draw of the calib set and the image, not
    for a given calib set, whose false-positive rate is Beta(l, n + 1 - l) distributed, l = floor(alpha (n + 1))."""
    return float(np.floor(alpha * (n + 1) + 1e-9) / (n + 1))


@hookimpl
def register_calibrators(register):
    register(Platt)
    register(Isotonic)
    register(Temperature)
    register(Uncalibrated)
    register(Conformal)
