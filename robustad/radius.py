"""A robustness radius per eval image: the smallest eps at which the attack moves the image across the decision
threshold (docs/protocol.md section 6), and the eps at which the adversarial AUROC falls below 0.5.

At the grid's eps every detector may already be at AUROC 0, which ranks nothing; the size of perturbation each
image needs does (FAB and minimum-norm attacks; RobustBench's accuracy-against-eps curves). The search is PGD on the
surrogate's loss (the engine's standard gradient attack, steps of ``alpha_ratio * eps`` from the clean image) in
a bracketing search per image:

1. PGD with ``steps`` steps at ``eps_max``; an image that never crosses there has radius ``inf`` (censored: it
   needs more than ``eps_max`` from this attack). An image already on the wrong side has radius 0.
2. ``refinements`` bisection rounds: each image is attacked at the middle of its bracket [low, high] with
   ``refine_steps`` steps, warm-started from the crossing perturbation found at ``high`` projected into the
   smaller ball; a crossing moves ``high`` down (and keeps that perturbation), a failure moves ``low`` up.

The radius is ``high``: the attack crosses at that eps, and did not at ``high - tolerance``, tolerance = eps_max /
2^refinements. Every iterate is judged by the real detector score against the threshold. With the defaults
(10 + 6 x 2 gradient steps) the search cost 2.44 PGD-10 runs under L-inf and 1.62 under L2 (4 bottle images,
efficientnet_lite0, score surrogate, a loaded 2-core machine: ``benchmarks/bench_attacks.py --radius``).
It bounds the minimal perturbation from above: a stronger attack can only find smaller radii.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from robustad.errors import RobustadError
from robustad.kit import attacking as kit
from robustad.kit.threat import L2, NORMS, project


@dataclass(frozen=True)
class RadiusSearch:
    """Per image the radius found (0: wrong side already; inf: not crossed at ``eps_max``), the bracket width
    ``tolerance`` and the gradient steps spent per image."""

    radii: np.ndarray
    tolerance: float
    eps_max: float
    norm: str
    gradient_steps: int


def search(model: torch.nn.Module, score: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
           labels: torch.Tensor, threshold: float, *, norm: str = "linf", eps_max: float = 8 / 255, steps: int = 10,
           refinements: int = 6, refine_steps: int = 2, alpha_ratio: float = 0.25, loss: str = "ce") -> RadiusSearch:
    """The radius of each image of ``images`` (labels 0 normal, 1 anomalous) against the decision ``score >=
    threshold``; ``model`` gives the surrogate's two logits ``[-z/2, z/2]`` whose loss the steps ascend."""
    _check(norm, eps_max, steps, refinements, refine_steps, alpha_ratio)
    labels = labels.to(torch.int64)
    count = images.shape[0]
    target = _Target(model, score, images, labels, threshold, norm, loss, alpha_ratio)
    already = target.crossed(images)
    high = torch.full((count,), float(eps_max), dtype=torch.float64, device=images.device)
    found, delta = target.attack(torch.zeros_like(images), high, steps)
    found |= already
    low = torch.zeros_like(high)
    for _ in range(refinements):
        middle = (low + high) / 2
        start = torch.where(_view(found, images), delta, torch.zeros_like(delta))
        crossed, candidate = target.attack(start, middle, refine_steps)
        crossed &= found & ~already
        high = torch.where(crossed, middle, high)
        low = torch.where(crossed | ~found | already, low, middle)
        delta = torch.where(_view(crossed, images), candidate, delta)
    radii = torch.where(found, high, torch.full_like(high, float("inf")))
    radii = torch.where(already, torch.zeros_like(radii), radii)
    return RadiusSearch(radii.cpu().numpy(), eps_max / 2 ** refinements, eps_max, norm,
                        steps + refinements * refine_steps)


class _Target:
    """The attack's view of one batch: gradient steps on the surrogate's loss, crossings by the real score."""

    def __init__(self, model, score, images, labels, threshold, norm, loss, alpha_ratio) -> None:
        self.model, self.score, self.images, self.labels = model, score, images, labels
        self.threshold, self.norm, self.loss, self.alpha_ratio = threshold, norm, loss, alpha_ratio

    def crossed(self, adversarial: torch.Tensor) -> torch.Tensor:
        """Whether each image is on the wrong side of the threshold: a normal one at or above, an anomalous one
        below."""
        with torch.no_grad():
            scores = torch.as_tensor(kit.as_numpy(self.score(adversarial)), dtype=torch.float64,
                                     device=self.labels.device).reshape(-1)
        return torch.where(self.labels == 1, scores < self.threshold, scores >= self.threshold)

    def attack(self, start: torch.Tensor, eps: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``steps`` steps in each image's ball of radius ``eps`` from ``start`` (projected into it first): whether
        an iterate crossed and, per image, the first crossing perturbation (else the last)."""
        radius = eps.view(-1, *(1,) * (self.images.ndim - 1)) if self.norm != L2 else eps
        current = project(self.images + start, self.images, radius.to(self.images.dtype)
                          if self.norm != L2 else radius, self.norm)
        crossed = self.crossed(current)
        kept = current.clone()
        for _ in range(steps):
            with torch.enable_grad():
                inputs = current.detach().requires_grad_(True)
                values = kit.objective(self.model(inputs), self.labels, self.loss)
                (gradient,) = torch.autograd.grad(values.sum(), inputs)
            size = (self.alpha_ratio * eps).to(self.images.dtype).view(-1, *(1,) * (self.images.ndim - 1))
            current = project(current.detach() + kit.steepest(gradient, size, self.norm), self.images,
                              radius.to(self.images.dtype) if self.norm != L2 else radius, self.norm)
            now = self.crossed(current) & ~crossed
            kept = torch.where(_view(now | ~crossed, current), current, kept)
            crossed |= now
        return crossed, kept - self.images


def _view(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, *(1,) * (like.ndim - 1))


def _check(norm: str, eps_max: float, steps: int, refinements: int, refine_steps: int, alpha_ratio: float) -> None:
    if norm not in NORMS:
        raise RobustadError(f"radius search: norm {norm!r}; expected one of {', '.join(NORMS)}")
    if not 0 < eps_max < float("inf"):
        raise RobustadError(f"radius search: eps_max {eps_max!r}; expected a number > 0")
    for name, value in (("steps", steps), ("refinements", refinements), ("refine_steps", refine_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RobustadError(f"radius search: {name} {value!r}; expected an integer >= 1")
    if not 0 < alpha_ratio <= 1:
        raise RobustadError(f"radius search: alpha_ratio {alpha_ratio!r}; expected a number in (0, 1]")


def median_radius(radii: np.ndarray, *, resamples: int = 1000, seed: int = 0,
                  level: float = 0.95) -> tuple[float, float, float]:
    """The median radius over images with its percentile bootstrap interval over images (inf where more than half
    of the drawn images were not crossed at eps_max)."""
    values = np.asarray(radii, dtype=np.float64)
    if values.size == 0 or np.isnan(values).any():
        raise RobustadError(f"median_radius: expected one radius per image, got {values.size} with NaN or none")
    draws = np.random.default_rng(seed).integers(0, values.size, size=(resamples, values.size))
    medians = np.median(values[draws], axis=1)  # no interpolation below: an infinite radius stays infinite
    low = np.percentile(medians, 50 * (1 - level), method="lower")
    high = np.percentile(medians, 50 * (1 + level), method="higher")
    return float(np.median(values)), float(low), float(high)


def breaking_eps(eps: np.ndarray, auroc: np.ndarray, clean_auroc: float) -> float:
    """The eps at which the adversarial AUROC curve first falls below 0.5, interpolated linearly between the
    measured eps (eps 0: the clean AUROC); 0 when the clean AUROC is below 0.5, inf when no measured eps reaches
    it (it lies beyond the largest)."""
    order = np.argsort(eps)
    x = np.concatenate([[0.0], np.asarray(eps, dtype=float)[order]])
    y = np.concatenate([[clean_auroc], np.asarray(auroc, dtype=float)[order]])
    if y[0] < 0.5:
        return 0.0
    below = np.flatnonzero(y < 0.5)
    if below.size == 0:
        return float("inf")
    i = below[0]
    return float(x[i - 1] + (y[i - 1] - 0.5) / (y[i - 1] - y[i]) * (x[i] - x[i - 1]))
