"""The clean image as a candidate, and the scores an attack may select on (docs/protocol.md section 4).

delta = 0 lies in every threat model, so (as AutoAttack keeps the clean point where no attack succeeds) the engine
keeps, per image, the unperturbed image wherever an attack's result does not move the score in the attack's
direction: a normal image's up, an anomalous image's down. Behind a randomized defense that choice, like every
choice an attack makes, is taken on the selection draws; the row then reports the kept images on reporting draws
that neither the attack nor this choice has seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from robustad.contracts import Perturbed
from robustad.engine.clean import CleanStage
from robustad.records import DetectorOutput


@dataclass
class BatchSelection:
    """The selection scores of one eval batch: its clean images' (computed once, when first asked for) and each
    attack result's, by attack variant."""

    stage: CleanStage
    indices: list[int]
    images: torch.Tensor
    results: dict[str, np.ndarray] = field(default_factory=dict)
    _clean: np.ndarray | None = None

    @property
    def randomized(self) -> bool:
        defense = self.stage.backbone.defense
        return defense is not None and defense.randomized

    @property
    def clean(self) -> np.ndarray:
        """The clean images' selection scores: the reported clean scores where the defense draws nothing."""
        if self._clean is None:
            self._clean = (_scores(self.stage.select(self.images)) if self.randomized
                           else self.stage.eval_scores[self.indices].astype(np.float64))
        return self._clean

    def of(self, key: str, result: Perturbed) -> np.ndarray:
        """The selection scores of the attack variant ``key``'s (final) result on this batch."""
        if key not in self.results:
            self.results[key] = (_scores(self.stage.select(result.images)) if self.randomized
                                 else _scores(result.output))
        return self.results[key]

    def member(self, key: str, result: Perturbed) -> Perturbed:
        """A member's result as another attack sees it: its output's scores are the selection scores (the
        reported ones where the defense draws nothing), so that no attack selects on reporting draws."""
        if not self.randomized:
            return result
        output = result.output
        return Perturbed(result.images, DetectorOutput(self.of(key, result), output.patch_distances, output.masks,
                                                       output.extra))


def keep_clean(key: str, result: Perturbed, labels: np.ndarray, selection: BatchSelection) -> Perturbed:
    """``result`` with the clean image (its image, reported score, patch distances and mask) wherever the result's
    selection score does not move the clean one's in the attack's direction (ties keep the clean image)."""
    stage, indices = selection.stage, selection.indices
    sign = 1.0 - 2.0 * np.asarray(labels, dtype=np.float64)
    chosen = selection.of(key, result)
    clean = sign * (chosen - selection.clean) <= 0
    if not clean.any():
        return result
    selection.results[key] = np.where(clean, selection.clean, chosen)
    keep = torch.as_tensor(clean, device=result.images.device).view(-1, 1, 1, 1)
    images = torch.where(keep, selection.images.to(result.images.dtype), result.images)
    output = result.output
    scores = np.where(clean, stage.eval_scores[indices], np.asarray(output.scores, dtype=np.float64).reshape(-1))
    distances = np.stack([stage.eval[i].distances if kept else np.asarray(output.patch_distances[row])
                          for row, (i, kept) in enumerate(zip(indices, clean))])
    masks = output.masks
    if masks is not None and stage.eval[indices[0]].mask is not None:
        masks = np.stack([stage.eval[i].mask if kept else np.asarray(masks[row])
                          for row, (i, kept) in enumerate(zip(indices, clean))])
    return Perturbed(images, DetectorOutput(scores, distances, masks, output.extra))


def _scores(output: DetectorOutput) -> np.ndarray:
    return np.asarray(output.scores, dtype=np.float64).reshape(-1)
