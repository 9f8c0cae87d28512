"""White-box surrogate: the detector's own differentiable score, centred by the calib threshold (z = s - tau).

The foreground masks are frozen from the clean image so the attack cannot move the mask, only the patch distances.
"""

from __future__ import annotations

import numpy as np
import torch

from robustad.hookspecs import hookimpl
from robustad.kit.backbone_checks import device_of
from robustad.metrics import check_labels, f1_optimal_threshold, require_both_classes
from robustad.records import DetectorOutput, Features


class ScoreLogit(torch.nn.Module):
    """``x -> detector.score_tensor(backbone(x), masks) - tau`` for one batch with its frozen masks."""

    def __init__(self, backbone: torch.nn.Module, detector: object, masks: torch.Tensor | None, tau: float) -> None:
        super().__init__()
        self.backbone = backbone
        self.detector = detector
        self.masks = masks
        self.tau = tau

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.detector.score_tensor(self.backbone(x), self.masks) - self.tau


class ScoreSurrogate:
    """The detector score minus its F1-optimal calib threshold."""

    name = "score"
    description = "white-box: detector score minus the calib F1-optimal threshold, masks frozen from the clean image"
    white_box = True

    def __init__(self) -> None:
        """No options: z = s - tau exactly as PROTOCOL.md section 4 defines it."""
        self.backbone: torch.nn.Module | None = None
        self.detector: object = None
        self.tau = 0.0

    def fit(self, backbone: torch.nn.Module, detector: object, features: Features, labels: np.ndarray,
            scores: np.ndarray) -> None:
        targets = check_labels(labels, "score surrogate calib")
        require_both_classes(targets, "score surrogate",
                             "the threshold tau needs normal and anomalous calib scores")
        self.tau = f1_optimal_threshold(targets, scores)
        self.backbone = backbone
        self.detector = detector

    def logit_model(self, clean: DetectorOutput) -> torch.nn.Module:
        if self.backbone is None:
            raise RuntimeError("ScoreSurrogate.logit_model called before fit")
        device = device_of(self.backbone)
        masks = None if clean.masks is None else torch.as_tensor(np.asarray(clean.masks, dtype=bool), device=device)
        return ScoreLogit(self.backbone, self.detector, masks, self.tau).eval()


@hookimpl
def register_surrogates(register):
    register(ScoreSurrogate)
