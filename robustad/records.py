"""Record types that flow between the core and the plugins."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch


@dataclass(frozen=True)
class Sample:
    """One image of a dataset: label 0 = normal, 1 = anomalous; ``mask`` is None for normal images."""

    path: Path
    label: int
    mask: Path | None = None
    defect: str = "good"


@dataclass(frozen=True)
class CategoryData:
    """What a dataset plugin returns for one category: normal training images and the labelled test split."""

    dataset: str
    category: str
    train: list[Sample]
    test: list[Sample]


@dataclass(frozen=True)
class Split:
    """The protocol's view of one category for one (k, seed): PROTOCOL.md section 2."""

    reference: list[Sample]
    calib: list[Sample]
    eval: list[Sample]
    test: list[Sample]


@dataclass
class Features:
    """Backbone output: final-norm patch tokens ``(B, h, w, C)`` (not L2-normalised) and a global token ``(B, C)``."""

    patch_tokens: torch.Tensor
    global_token: torch.Tensor


@dataclass
class DetectorOutput:
    """Scores of a batch: image scores ``(B,)``, patch distances ``(B, h, w)``, foreground masks or None."""

    scores: np.ndarray
    patch_distances: np.ndarray
    masks: np.ndarray | None = None
    extra: dict = field(default_factory=dict)
