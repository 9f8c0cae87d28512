"""anomalib's image models as robustad detectors: ``--detector anomalib:<Model>`` on ``--backbone anomalib``.

A third-party plugin distribution: it reaches robustad only through its ``robustad`` entry point and the public
API (``robustad.hookimpl``, the records, ``robustad.kit``). Each detector owns its forward pass
(``robustad.contracts.ImageDetector``): anomalib's pre-processing and torch model, whose gradients the attacks
follow (white-box). Only models that fit on the k reference images without training epochs are offered: the
memory-bank and density models, and the zero- and few-shot ones; any other model is one line saying so. anomalib
is imported when a detector is created, so ``robustad plugins`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from robustad import DetectorOutput, Features, RobustadError, hookimpl
from robustad.kit.weights import RANDOM

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image


class AnomalibNetwork:
    """The cell's backbone for an anomalib detector: anomalib builds the network itself, so this records where
    the weights come from (anomalib's pretrained ones, or ``random``: seeded random initialisation, no download)."""

    name = "anomalib"
    description = "the anomalib model's own network (for anomalib:<Model>); weights: anomalib's pretrained or random"
    patch_size = 1
    weights_id: str

    def __init__(self, *, weights: str | None = None, device: str = "cpu") -> None:
        if weights not in (None, RANDOM):
            raise RobustadError(f"backbone anomalib: weights={weights!r}; expected unset (anomalib's pretrained "
                                f"weights) or {RANDOM}")
        self.weights_id = weights or "anomalib"
        self.device = device

    def __call__(self, images: torch.Tensor) -> Features:
        raise RobustadError("backbone anomalib only carries an anomalib:<Model> detector, which runs its own network")


class AnomalibDetector:
    """An anomalib image model, fitted on the reference images as its Lightning module fits it, scored by its torch
    model in eval mode; image score and anomaly map are anomalib's raw (unnormalised) ones."""

    name = "anomalib"
    primary_option = "model"  # anomalib:Padim
    description = ("an anomalib 2.7.0 image model that fits without training (anomalib:Padim, anomalib:WinClip, ...), "
                   "white-box through its torch model")
    zero_shot = True  # anomalib's zero-shot models score with no reference image; the others refuse k = 0 in fit
    memory_bank_size: int

    def __init__(self, backbone: object, resolution: int, category: str, *, model: str = "Padim",
                 class_name: str = "") -> None:
        from robustad_anomalib.adapter import AnomalibModel

        self.check_options(model=model)
        self.backbone = backbone
        self.model = AnomalibModel(model, resolution, class_name or category,
                                   random=getattr(backbone, "weights_id", None) == RANDOM,
                                   device=str(getattr(backbone, "device", "cpu")))
        self.memory_bank_size = 0

    @staticmethod
    def check_options(*, model: str = "Padim", class_name: str = "") -> None:
        """A one-line error for a model anomalib does not have or that needs training, before anything is built."""
        from robustad_anomalib.catalogue import check_model

        check_model(model)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.model.preprocess(image)

    def fit(self, reference: list[Image.Image]) -> None:
        """Fit on the reference images, through the run's backbone slot (so a defense applies to them too)."""
        import torch

        images = torch.stack([self.preprocess(image) for image in reference]) if reference else None
        self.model.fit(images, self.backbone)
        self.memory_bank_size = self.model.bank_size()

    def image_features(self, images: torch.Tensor) -> Features:
        return self.model.features(images)

    def score(self, features: Features) -> DetectorOutput:
        return DetectorOutput(features.global_token[:, 0].detach().double().cpu().numpy(),
                              features.patch_tokens[..., 0].detach().double().cpu().numpy())

    def score_tensor(self, features: Features, masks: object = None) -> torch.Tensor:
        return features.global_token[:, 0]

    def anomaly_map(self, patch_distances: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """anomalib's map at its input size, bilinearly resized to the image."""
        import numpy as np
        import torch
        import torch.nn.functional as F

        grid = torch.as_tensor(np.asarray(patch_distances, dtype=np.float32))[None, None]
        return F.interpolate(grid, size=tuple(size), mode="bilinear", align_corners=False)[0, 0].numpy()


@hookimpl
def register_backbones(register):
    register(AnomalibNetwork)


@hookimpl
def register_detectors(register):
    register(AnomalibDetector)
