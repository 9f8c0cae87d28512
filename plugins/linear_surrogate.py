"""The seed paper's surrogate: a logistic head on frozen backbone features, fitted on calib (a transfer attack).

The image descriptor is the CLS/global token concatenated with the mean patch token (for a CNN the global token is
its pooled feature map: the same code path). sklearn fits the classifier on standardised descriptors; its weights
become fixed torch buffers so ``z(x) = w . standardise(descriptor(x)) + b`` is differentiable w.r.t. the image.
torch and sklearn are imported on first use, so listing plugins stays fast.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit import options
from robustad.records import DetectorOutput, Features

if TYPE_CHECKING:
    import torch


def descriptor(features: Features) -> torch.Tensor:
    """The image descriptor ``(B, 2C)``: global token, then the mean patch token."""
    import torch

    return torch.cat([features.global_token, features.patch_tokens.mean(dim=(1, 2))], dim=1)


@cache
def linear_logit_class() -> type:
    """``LinearLogit``, a torch module defined on first use so that importing this plugin does not import torch."""
    import torch

    from robustad.kit.backbone_checks import device_of

    class LinearLogit(torch.nn.Module):
        """``x -> z = weight . (descriptor(backbone(x)) - mean) / scale + bias``; the head is fixed (buffers only)."""

        def __init__(self, backbone: torch.nn.Module, mean: np.ndarray, scale: np.ndarray, weight: np.ndarray,
                     bias: float) -> None:
            super().__init__()
            self.backbone = backbone
            device = device_of(backbone)
            for name, value in (("mean", mean), ("scale", scale), ("weight", weight), ("bias", np.asarray(bias))):
                self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32, device=device))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            standardised = (descriptor(self.backbone(x)) - self.mean) / self.scale
            return standardised @ self.weight + self.bias

    return LinearLogit


def calib_descriptors(features: list[Features], count: int) -> np.ndarray:
    """Descriptors ``(count, 2C)`` float64 of the calib images, one ``Features`` each (their sizes may differ)."""
    if isinstance(features, Features) or not features:
        raise RobustadError("linear surrogate: features must be a non-empty list of Features, one per calib image")
    rows = np.concatenate([descriptor(part).detach().cpu().double().numpy() for part in features])
    if rows.shape[0] != count:
        raise RobustadError(f"linear surrogate: {rows.shape[0]} calib images in the features but {count} labels; "
                            "expected one label per image")
    return rows


class LinearSurrogate:
    """Logistic regression on the global + mean patch descriptor of the calib images."""

    name = "linear"
    primary_option = "C"  # what linear:VALUE sets
    description = "logistic head on global + mean patch token, fitted on calib (transfer attack, the seed paper's)"
    white_box = False

    def __init__(self, *, C: float = 1.0, max_iter: int = 1000) -> None:
        self.C = options.positive("linear surrogate", "C", C)  # inverse regularisation strength
        self.max_iter = options.integer("linear surrogate", "max_iter", max_iter, 1)
        self.model: torch.nn.Module | None = None

    def fit(self, backbone: torch.nn.Module, detector: object, features: list[Features], labels: np.ndarray,
            scores: np.ndarray) -> None:
        """Fit the head on one descriptor per calib image; the detector and its scores are not used."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        from robustad.metrics import check_labels, require_both_classes

        targets = check_labels(labels, "linear surrogate calib")
        require_both_classes(targets, "linear surrogate",
                             "fitting the classifier needs normal and anomalous calib images")
        inputs = calib_descriptors(features, len(targets))
        scaler = StandardScaler().fit(inputs)
        classifier = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(scaler.transform(inputs), targets)
        self.model = linear_logit_class()(backbone, scaler.mean_, scaler.scale_, classifier.coef_[0],
                                          float(classifier.intercept_[0]))

    def logit_model(self, clean: DetectorOutput) -> torch.nn.Module:
        """The same fitted head for every batch (it does not depend on the clean scores)."""
        if self.model is None:
            raise RuntimeError("LinearSurrogate.logit_model called before fit")
        return self.model


@hookimpl
def register_surrogates(register):
    register(LinearSurrogate)
