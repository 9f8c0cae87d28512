"""``worstcase``: the per-image worst case of other attacks, judged on the detector's real score (PROTOCOL.md
section 4, as AutoAttack takes its ensemble's worst case per sample).

The engine computes each member on the same batch first; this attack only picks, per image, the member result
with the highest score for a normal image and the lowest for an anomalous one. Its AUROC is therefore never above
any member's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from robustad.components import parse_spec
from robustad.contracts import Perturbed
from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit import attacking as kit
from robustad.records import DetectorOutput

if TYPE_CHECKING:
    from robustad.contracts import AttackTarget


class WorstCase:
    """Per image, the most adversarial result among the member attacks; ties go to the first member listed."""

    name = "worstcase"
    description = "per-image worst case of member attacks on the detector's real score (members=noise+fgsm+...)"
    needs_surrogate = True

    def __init__(self, *, members: str = "noise+fgsm+pgd+apgd+square") -> None:
        specs = [spec.strip() for spec in str(members).split("+")]
        if not all(specs):
            raise RobustadError(f"worstcase option members={members!r}: expected attack specs joined by '+', "
                                "e.g. noise+fgsm+pgd:20")
        for spec in specs:
            if parse_spec(spec)[0] == self.name:
                raise RobustadError(f"worstcase option members={members!r}: worstcase cannot be its own member")
        self.specs = specs

    def members(self) -> list[str]:
        return list(self.specs)

    def perturb(self, target: AttackTarget) -> Perturbed:
        import torch

        labels = kit.check_target(target, self.name)
        if target.member is None:
            raise RobustadError("worstcase needs its members' results on the batch (target.member is None)")
        results = [target.member(spec) for spec in self.specs]
        rows = [np.asarray(result.output.scores, dtype=np.float64).reshape(-1) for result in results]
        for spec, row in zip(self.specs, rows):
            if row.shape[0] != len(labels):
                raise RobustadError(f"worstcase member {spec!r} gave {row.shape[0]} scores for {len(labels)} images")
            if np.isnan(row).any():
                raise RobustadError(f"worstcase member {spec!r} gave a NaN score (image {int(np.isnan(row).argmax())})")
        sign = kit.direction(labels).cpu().numpy().astype(np.float64)
        chosen = np.argmax(sign * np.stack(rows), axis=0)  # on equal values argmax keeps the first member
        picks = list(enumerate(chosen))
        images = torch.stack([results[m].images[i] for i, m in picks])
        distances = np.stack([np.asarray(results[m].output.patch_distances[i]) for i, m in picks])
        masks = None
        if all(result.output.masks is not None for result in results):
            masks = np.stack([np.asarray(results[m].output.masks[i]) for i, m in picks])
        picked_scores = np.stack([np.asarray(results[m].output.scores).reshape(-1)[i] for i, m in picks])
        output = DetectorOutput(scores=picked_scores, patch_distances=distances,
                                masks=masks, extra={"worstcase_member": [self.specs[m] for m in chosen]})
        return Perturbed(images=images, output=output)

    def describe(self, eps: float) -> dict:
        return {"members": "+".join(self.specs)}


@hookimpl
def register_attacks(register):
    register(WorstCase)
