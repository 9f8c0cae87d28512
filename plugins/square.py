"""``square``: the L-inf Square attack (Andriushchenko et al. 2020), a gradient-free random search.

Each query sets one random square window of the image to ``clean +- eps`` (one sign per channel) and keeps it when
the loss on the surrogate's two logits rises; the window shrinks on the paper's schedule. It reads the model's
outputs only, never a gradient, so it still works where gradients are masked.

robustad runs its own implementation rather than torchattacks' ``Square`` (still available as
``torchattacks:Square``): that one stops working on an image as soon as the surrogate's decision flips and returns
the clean image for every image whose decision it could not flip, which suits robust accuracy but not AUROC, where
every bit of score movement counts. Here the whole budget is spent on every image and all random numbers come from
the image's own generator.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit import attacking as kit

if TYPE_CHECKING:
    import torch

    from robustad.contracts import AttackTarget

HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)  # the paper's schedule, for a budget of 10 000 queries


class Square:
    """Random search over square windows at the corners of the L-inf ball, best point by the loss kept."""

    name = "square"
    primary_option = "queries"  # what square:VALUE sets
    description = "Square attack (Andriushchenko et al. 2020): gradient-free random search, queries per image"
    norms = ("linf",)  # Square-L2 (its own window updates on the sphere) is not implemented: refused under L2

    def __init__(self, *, queries: int = 100, loss: str = "margin", p_init: float = 0.8, restarts: int = 1) -> None:
        kit.check_positive(self.name, queries=queries, restarts=restarts)
        if not 0 < p_init <= 1:
            raise RobustadError(f"square option p_init={p_init}: expected a share of the pixels in (0, 1]")
        self.queries = queries
        self.loss = kit.check_loss(self.name, loss)
        self.p_init = p_init
        self.restarts = restarts

    def perturb(self, target: AttackTarget) -> torch.Tensor:
        return kit.best_of_runs(target, self.name, self.restarts, self._run)

    def describe(self, eps: float) -> dict:
        return {"queries": self.queries, "random_start": True, "restarts": self.restarts, "loss": self.loss}

    def _run(self, target: AttackTarget, labels: torch.Tensor, generators: list, best: kit.BestCandidate) -> None:
        """One run of ``queries`` model evaluations per image from random vertical stripes; offers its start and
        its final point to ``best``."""
        import torch

        clean, eps = target.images, target.eps
        channels, height, width = clean.shape[1:]
        stripes = torch.stack([kit.random_signs((channels, 1, width), g, clean.device) for g in generators])
        current = kit.project(clean + eps * stripes.to(clean.dtype), clean, eps)
        loss, z = kit.loss_only(target, current, labels, self.loss)
        best.offer(current, kit.real_scores(target, current, z))
        for query in range(1, self.queries):
            side = window_side(self.p_init, query, self.queries, height, width)
            candidate = torch.stack([_with_window(current[i], clean[i], eps, side, g)
                                     for i, g in enumerate(generators)])
            new_loss, new_z = kit.loss_only(target, candidate, labels, self.loss)
            improved = new_loss > loss
            current = torch.where(improved.view(-1, 1, 1, 1), candidate, current)
            loss, z = torch.where(improved, new_loss, loss), torch.where(improved, new_z, z)
        best.offer(current, kit.real_scores(target, current, z))


def window_side(p_init: float, query: int, queries: int, height: int, width: int) -> int:
    """Side of the square window at ``query``: sqrt of the share p of the pixels, p halving on the paper's
    schedule rescaled to the budget; at least 1 and at most the shorter image edge."""
    scaled = int(query / queries * 10000)
    share = p_init / 2 ** sum(scaled > mark for mark in HALVINGS)
    return min(max(round(math.sqrt(share * height * width)), 1), height, width)


def _with_window(current: torch.Tensor, clean: torch.Tensor, eps: float, side: int,
                 generator: torch.Generator) -> torch.Tensor:
    """``current`` with one random window set to ``clean +- eps`` (a sign per channel); when that changes nothing,
    the opposite signs are used, so every query tries a new point."""
    import torch

    channels, height, width = clean.shape
    top = int(torch.randint(0, height - side + 1, (1,), generator=generator, device=clean.device))
    left = int(torch.randint(0, width - side + 1, (1,), generator=generator, device=clean.device))
    signs = kit.random_signs((channels, 1, 1), generator, clean.device).to(clean.dtype)
    rows, cols = slice(top, top + side), slice(left, left + side)
    window = kit.project(clean[:, rows, cols] + eps * signs, clean[:, rows, cols], eps)
    if torch.equal(window, current[:, rows, cols]):
        window = kit.project(clean[:, rows, cols] - eps * signs, clean[:, rows, cols], eps)
    candidate = current.clone()
    candidate[:, rows, cols] = window
    return candidate


@hookimpl
def register_attacks(register):
    register(Square)
