"""White-box surrogate: the detector's own differentiable score, centred by the calib threshold and scaled by the
calib scores' spread (z = (s - tau) / spread).

The scale makes z unitless, so that a logistic loss on it behaves alike on every detector: on SubspaceAD's large
residual scores an unscaled z of hundreds sent the cross-entropy's gradient to exactly zero in float32 (the
sigmoid underflows), and its anomalous images never moved.

docs/protocol.md section 4: where the detector masks the foreground, the attack optimises what will be scored, so by
default (``masks=live``) every forward recomputes the masks from the current adversarial image, as the detector does
when it scores it; the threshold step has zero gradient almost everywhere, so this is the exact gradient there.
``masks=frozen`` keeps the clean image's masks through the attack instead (the attack then moves only the patch
distances). torch is imported on first use, so listing plugins stays fast.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.records import DetectorOutput, Features

if TYPE_CHECKING:
    import torch

MASK_MODES = ("live", "frozen")


@cache
def logit_classes() -> tuple[type, type]:
    """``(ScoreLogit, LiveScoreLogit)``: torch modules, defined on first use so that importing this plugin does not
    import torch."""
    import torch

    class ScoreLogit(torch.nn.Module):
        """``x -> (detector.score_tensor(backbone(x), masks) - tau) / scale``, the batch's clean masks held fixed."""

        def __init__(self, backbone: torch.nn.Module, detector: object, masks: torch.Tensor | None,
                     tau: float, scale: float) -> None:
            super().__init__()
            self.backbone = backbone
            self.detector = detector
            self.masks = masks
            self.tau = tau
            self.scale = scale

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (self.detector.score_tensor(self.backbone(x), self.masks) - self.tau) / self.scale

    class LiveScoreLogit(ScoreLogit):
        """The logit with the masks the detector computes from ``x`` itself: ``z * scale + tau`` is the real score."""

        def __init__(self, backbone: torch.nn.Module, detector: object, tau: float, scale: float) -> None:
            super().__init__(backbone, detector, None, tau, scale)

        def score_of(self, z: torch.Tensor) -> torch.Tensor:
            """The detector's image scores of the images that gave the logits ``z``."""
            return z * self.scale + self.tau

    return ScoreLogit, LiveScoreLogit


class ScoreSurrogate:
    """The detector score minus its F1-optimal calib threshold, divided by the calib scores' standard deviation."""

    name = "score"
    primary_option = "masks"  # what score:VALUE sets
    description = ("white-box: detector score minus the calib F1-optimal threshold, over the calib scores' spread; "
                   "foreground masks recomputed at every step (live) or frozen from the clean image")
    white_box = True

    def __init__(self, *, masks: str = "live") -> None:
        if masks not in MASK_MODES:
            raise RobustadError(f"score surrogate: masks={masks!r}; expected live (recomputed from the adversarial "
                                "image at every step) or frozen (the clean image's)")
        self.masks = masks
        self.backbone: torch.nn.Module | None = None
        self.detector: object = None
        self.tau = 0.0
        self.scale = 1.0

    def fit(self, backbone: torch.nn.Module, detector: object, features: list[Features], labels: np.ndarray,
            scores: np.ndarray) -> None:
        """tau = the F1-optimal threshold of the clean calib scores, scale = their standard deviation (1 where they
        are all equal); the calib features are not needed."""
        from robustad.metrics import check_labels, f1_optimal_threshold, require_both_classes

        targets = check_labels(labels, "score surrogate calib")
        require_both_classes(targets, "score surrogate",
                             "the threshold tau needs normal and anomalous calib scores")
        self.tau = f1_optimal_threshold(targets, scores)
        self.scale = calib_spread(scores)
        self.backbone = backbone
        self.detector = detector

    def logit_model(self, clean: DetectorOutput) -> torch.nn.Module:
        """z = s - tau of a batch. It has ``score_of`` when z gives the real score: live masks, or no masks at all."""
        import torch

        from robustad.kit.backbone_checks import device_of

        if self.backbone is None:
            raise RuntimeError("ScoreSurrogate.logit_model called before fit")
        score_logit, live_score_logit = logit_classes()
        if self.masks == "live" or clean.masks is None:
            return live_score_logit(self.backbone, self.detector, self.tau, self.scale).eval()
        masks = torch.as_tensor(np.asarray(clean.masks, dtype=bool), device=device_of(self.backbone))
        return score_logit(self.backbone, self.detector, masks, self.tau, self.scale).eval()


def calib_spread(scores: np.ndarray) -> float:
    """The standard deviation of the calib scores, or 1 where it is zero or not finite (nothing to scale by)."""
    spread = float(np.std(np.asarray(scores, dtype=np.float64)))
    return spread if np.isfinite(spread) and spread > 0 else 1.0


@hookimpl
def register_surrogates(register):
    register(ScoreSurrogate)
