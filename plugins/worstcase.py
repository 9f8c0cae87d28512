"""``worstcase``: the per-image worst case of other attacks, judged on the detector's real score (docs/protocol.md
section 4, as AutoAttack takes its ensemble's worst case per sample).

The engine computes each member on the same batch first; this attack only picks, per image, the member result
with the highest score for a normal image and the lowest for an anomalous one. Its AUROC is therefore never above
any member's. With ``clean=true`` the unperturbed image is one more candidate (delta = 0 lies in the threat model,
and AutoAttack keeps the clean point where no attack beats it): then the AUROC is never above the clean one either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from robustad import parse_spec
from robustad.contracts import Perturbed
from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit import attacking as kit
from robustad.records import DetectorOutput

if TYPE_CHECKING:
    import torch

    from robustad.contracts import AttackTarget


class WorstCase:
    """Per image, the most adversarial result among the member attacks; ties go to the first member listed."""

    name = "worstcase"
    primary_option = "members"  # what worstcase:VALUE sets
    description = "per-image worst case of member attacks on the detector's real score (members=noise+fgsm+...)"
    needs_surrogate = True
    norms = ("linf", "l2")  # it only picks among its members' results; each member's norms are checked itself

    def __init__(self, *, members: str = "noise+fgsm+pgd+apgd+square", clean: bool = False) -> None:
        specs = [spec.strip() for spec in str(members).split("+")]
        if not all(specs):
            raise RobustadError(f"worstcase option members={members!r}: expected attack specs joined by '+', "
                                "e.g. noise+fgsm+pgd:20")
        for spec in specs:
            if parse_spec(spec)[0] == self.name:
                raise RobustadError(f"worstcase option members={members!r}: worstcase cannot be its own member")
        self.specs = specs
        self.clean = clean

    def members(self) -> list[str]:
        return list(self.specs)

    def perturb(self, target: AttackTarget) -> Perturbed | torch.Tensor:
        """A ``Perturbed`` with the chosen members' outputs; with ``clean=true`` the chosen images alone (the clean
        image's patch distances are not at hand, so the engine scores them: one detector pass)."""
        import torch

        labels = kit.check_target(target, self.name)
        if target.member is None:
            raise RobustadError("worstcase needs its members' results on the batch (target.member is None)")
        results = [target.member(spec) for spec in self.specs]
        rows = [_checked_scores(spec, result, len(labels)) for spec, result in zip(self.specs, results)]
        candidates = [result.images for result in results]
        if self.clean:  # last, so that on a tie a member's result is kept
            rows.append(np.asarray(kit.as_numpy(target.score(target.images)), dtype=np.float64).reshape(-1))
            candidates.append(target.images)
        sign = kit.direction(labels).cpu().numpy().astype(np.float64)
        chosen = np.argmax(sign * np.stack(rows), axis=0)  # on equal values argmax keeps the first candidate
        images = torch.stack([candidates[m][i] for i, m in enumerate(chosen)])
        if self.clean:
            return images
        return Perturbed(images=images, output=self._picked_output(results, chosen))

    def _picked_output(self, results: list[Perturbed], chosen: np.ndarray) -> DetectorOutput:
        """The chosen member's detector output row for each image; masks only when every member has them."""
        picks = list(enumerate(chosen))
        masks = None
        if all(result.output.masks is not None for result in results):
            masks = np.stack([np.asarray(results[m].output.masks[i]) for i, m in picks])
        return DetectorOutput(scores=np.stack([np.asarray(results[m].output.scores).reshape(-1)[i] for i, m in picks]),
                              patch_distances=np.stack([np.asarray(results[m].output.patch_distances[i])
                                                        for i, m in picks]),
                              masks=masks, extra={"worstcase_member": [self.specs[m] for m in chosen]})

    def describe(self, eps: float) -> dict:
        return {"members": "+".join(self.specs + (["clean"] if self.clean else []))}


class Standard(WorstCase):
    """An AutoAttack-grade worst case (Croce & Hein 2020): per image, the worst of Auto-PGD-100 run with
    cross-entropy and with the margin loss (one random start each; ``--opt attack.apgd.restarts=N`` for more),
    Square with 1,000 queries and the clean image; against a randomized defense with the cell's EOT draws (16 by
    default). Square makes it L-inf only."""

    name = "standard"
    description = "AutoAttack-grade worst case: apgd:100 (ce+margin) + square:1000 + the clean image"
    norms = ("linf",)

    def __init__(self, *, members: str = "apgd:100+square:1000", clean: bool = True) -> None:
        super().__init__(members=members, clean=clean)


def _checked_scores(spec: str, result: Perturbed, count: int) -> np.ndarray:
    """A member's scores as float64, refused in one line when their number is wrong or one is NaN."""
    scores = np.asarray(result.output.scores, dtype=np.float64).reshape(-1)
    if scores.shape[0] != count:
        raise RobustadError(f"worstcase member {spec!r} gave {scores.shape[0]} scores for {count} images")
    if np.isnan(scores).any():
        raise RobustadError(f"worstcase member {spec!r} gave a NaN score (image {int(np.isnan(scores).argmax())})")
    return scores


@hookimpl
def register_attacks(register):
    register(WorstCase)
    register(Standard)
