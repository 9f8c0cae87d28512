"""Calibrators (PROTOCOL.md section 5): map a raw detector score s to p = P(anomalous | s).

Each is fitted on the clean calib scores only and then applied to clean and adversarial eval scores.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.metrics import check_labels, check_values, f1_optimal_threshold, require_both_classes

ISOTONIC_CLIP = 1e-6
TEMPERATURE_RANGE = 1e6  # T is searched within [spread / 1e6, spread * 1e6], spread = std of the calib scores


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

    def __init__(self) -> None:
        self.slope: float | None = None
        self.intercept: float | None = None

    def fit(self, scores: np.ndarray, labels: np.ndarray) -> Platt:
        """Convex fit with BFGS on standardised scores; smoothed targets keep it finite even on separable calib."""
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
        s = _predict_input(self.name, scores, self.slope is not None)
        return expit(self.slope * s + self.intercept)


class Isotonic:
    """Isotonic regression: a non-decreasing step fit of the labels, clipped to [1e-6, 1 - 1e-6]."""

    name = "isotonic"
    description = "isotonic regression (monotone step fit), clipped to [1e-6, 1-1e-6]"

    def __init__(self) -> None:
        self.model: IsotonicRegression | None = None

    def fit(self, scores: np.ndarray, labels: np.ndarray) -> Isotonic:
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
    description = "sigmoid((s - tau)/T): tau = calib F1-optimal threshold, T > 0 fitted by NLL"

    def __init__(self) -> None:
        self.tau: float | None = None
        self.temperature: float | None = None

    def fit(self, scores: np.ndarray, labels: np.ndarray) -> Temperature:
        """tau from ``f1_optimal_threshold``; log T by bounded Brent search of the calib NLL.

        The NLL is convex in 1/T, hence unimodal in log T. On calib data that tau separates perfectly the NLL keeps
        falling as T -> 0, so T ends tiny (where the NLL stops changing in float64, never below spread / 1e6) and
        p is practically 0 or 1: plain maximum likelihood, as PROTOCOL.md section 5 asks.
        Constant calib scores leave T undetermined: a RobustadError.
        """
        s, y = _fit_inputs(self.name, scores, labels, both_classes=True)
        if s.min() == s.max():
            raise RobustadError(f"calibrator {self.name!r}: all calib scores equal {s[0]}; T cannot be fitted")
        tau = f1_optimal_threshold(y, s)
        offset = s - tau
        log_spread = np.log(_spread(s))
        bound = np.log(TEMPERATURE_RANGE)

        def mean_nll(log_t: float) -> float:
            return float(_logistic_loss(offset * np.exp(-log_t), y).mean())

        result = minimize_scalar(mean_nll, bounds=(log_spread - bound, log_spread + bound), method="bounded",
                                 options={"xatol": 1e-8})
        self.tau, self.temperature = tau, float(np.exp(result.x))
        return self

    def predict(self, scores: np.ndarray) -> np.ndarray:
        s = _predict_input(self.name, scores, self.temperature is not None)
        return expit((s - self.tau) / self.temperature)


class Uncalibrated:
    """The uncalibrated baseline: scores min-max scaled on calib, clipped to [0, 1].

    Constant calib scores c define a step at c: p = 0 below, 0.5 at, 1 above (the limit of min-max scaling on a
    shrinking range around c). Labels are not used, so one-class calib data are fine here.
    """

    name = "none"
    description = "uncalibrated baseline: raw scores min-max scaled on calib and clipped to [0,1]"

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


@hookimpl
def register_calibrators(register):
    register(Platt)
    register(Isotonic)
    register(Temperature)
    register(Uncalibrated)
