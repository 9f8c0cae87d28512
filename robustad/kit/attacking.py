"""Building blocks of attack plugins: checks of an ``AttackTarget``, the losses on its two logits, per-image random
draws, and the judge that keeps each image's most adversarial candidate by the detector's real score.

torch is imported inside the functions so that a plugin importing this module stays fast to list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from robustad.errors import RobustadError
from robustad.kit import options
from robustad.kit.threat import L2, LINF

if TYPE_CHECKING:
    import torch

    from robustad.contracts import AttackTarget

GRADIENT_LOSSES = ("ce", "margin")


def check_loss(attack: str, loss: str) -> str:
    """``loss`` if it is one of ``GRADIENT_LOSSES``; DLR gets its own reason, anything else the list of choices."""
    if loss == "dlr":
        raise RobustadError(dlr_refusal(f"{attack} loss='dlr'"))
    if loss not in GRADIENT_LOSSES:
        raise RobustadError(f"{attack} option loss={loss!r}: expected one of {', '.join(GRADIENT_LOSSES)}")
    return loss


def dlr_refusal(what: str, remedy: str = "use loss=ce or loss=margin") -> str:
    """The one line that explains why a DLR loss cannot run on robustad's two-logit model."""
    return (f"{what} is not available: the DLR loss divides by the gap between the largest and the third-largest "
            f"logit, so it needs at least 3 classes, and robustad's model has two logits [-z/2, z/2]; {remedy}")


def check_positive(attack: str, **values: float) -> None:
    """Refuse an option that must be positive (an int >= 1 for integers)."""
    for option, value in values.items():
        if isinstance(value, int) and not isinstance(value, bool):
            options.integer(attack, option, value, 1)
        else:
            options.positive(attack, option, value)


def check_target(target: AttackTarget, attack: str) -> torch.Tensor:
    """The labels as an int64 tensor on the images' device, after checking eps, images, labels and seeds."""
    import torch

    if target.norm == LINF and not 0 < target.eps <= 1:
        raise RobustadError(f"{attack}: eps={target.eps} is outside (0, 1]; eps is in [0,1] pixel units, e.g. 8/255")
    if target.norm == L2 and not target.eps > 0:
        raise RobustadError(f"{attack}: L2 eps={target.eps}; expected a number > 0")
    if target.norm not in (LINF, L2):
        raise RobustadError(f"{attack}: norm {target.norm!r}; expected {LINF} or {L2}")
    images = target.images
    if images.ndim != 4 or images.shape[1] != 3:
        raise RobustadError(f"{attack}: images of shape {tuple(images.shape)}; expected (B, 3, H, W)")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise RobustadError(f"{attack}: images span [{float(images.min()):.3g}, {float(images.max()):.3g}]; "
                            "expected [0,1] pixels")
    labels = target.labels
    values = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if values.shape[0] != images.shape[0] or not np.isin(values, (0, 1)).all():
        raise RobustadError(f"{attack}: labels {values.tolist()[:8]}; expected one 0/1 label per image "
                            f"({images.shape[0]} images)")
    if len(target.seeds) != images.shape[0]:
        raise RobustadError(f"{attack}: {len(target.seeds)} seeds for {images.shape[0]} images; expected one each")
    return torch.as_tensor(values.astype(np.int64), device=images.device)


def direction(labels: torch.Tensor) -> torch.Tensor:
    """+1 for normal images (push the score up), -1 for anomalous ones (push it down), as float."""
    return (1 - 2 * labels).float()


def logit(logits: torch.Tensor) -> torch.Tensor:
    """The anomaly logit z of the two logits ``[-z/2, z/2]``."""
    return logits[:, 1] - logits[:, 0]


def objective(logits: torch.Tensor, labels: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-image loss the attack maximises: ``ce`` (cross-entropy with the true label, the logistic loss of z) or
    ``margin`` (``(1 - 2y) * z``: z pushed up for normal, down for anomalous images; it never saturates)."""
    import torch

    if loss == "margin":
        return direction(labels) * logit(logits)
    return torch.nn.functional.cross_entropy(logits, labels, reduction="none")


def loss_and_gradient(target: AttackTarget, images: torch.Tensor, labels: torch.Tensor, loss: str,
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image loss, anomaly logit z and the gradient of the loss w.r.t. the images (one forward, one backward)."""
    import torch

    with torch.enable_grad():
        images = images.detach().requires_grad_(True)
        logits = target.model(images)
        values = objective(logits, labels, loss)
        (gradient,) = torch.autograd.grad(values.sum(), images)
    return values.detach(), logit(logits).detach(), gradient.detach()


def flag_aware_gradient(target: AttackTarget, images: torch.Tensor, labels: torch.Tensor, loss: str,
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image loss, logit z, the selective gradient and the flag's values (one forward of the model and one of
    the flag, one backward). Selective (Bryniarski et al. 2022): an image its flag catches (value at or above the
    threshold) steps down the flag's gradient, any other up the attack loss's, so that the sign step of each image
    follows one objective and neither scale swamps the other."""
    import torch

    with torch.enable_grad():
        images = images.detach().requires_grad_(True)
        logits = target.model(images)
        values = objective(logits, labels, loss)
        flag = target.flag.statistic(images).to(values.dtype)
        caught = flag.detach() >= target.flag.threshold
        (gradient,) = torch.autograd.grad(torch.where(caught, -flag, values).sum(), images)
    return values.detach(), logit(logits).detach(), gradient.detach(), flag.detach()


def flag_values(target: AttackTarget, images: torch.Tensor) -> torch.Tensor:
    """The flag's values of images without gradient (judging a final iterate)."""
    import torch

    with torch.no_grad():
        return target.flag.statistic(images).detach()


def loss_only(target: AttackTarget, images: torch.Tensor, labels: torch.Tensor, loss: str,
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image loss and anomaly logit z without gradient (one forward)."""
    import torch

    with torch.no_grad():
        logits = target.model(images)
    return objective(logits, labels, loss), logit(logits)


def real_scores(target: AttackTarget, images: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
    """The detector's real scores of ``images``: from z at no cost where the surrogate's z gives them, else one
    detector forward pass."""
    if z is not None and target.score_from_logit is not None:
        return target.score_from_logit(z)
    return target.score(images)


def judged_gradient(target: AttackTarget, images: torch.Tensor, labels: torch.Tensor, loss: str,
                    best: BestCandidate) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image loss and the gradient to step along at ``images``, offering them to ``best``: against the
    target's flag (a flag-aware attack) the selective gradient, judged by whether they evade both."""
    if target.flag is None:
        values, z, gradient = loss_and_gradient(target, images, labels, loss)
        best.offer(images, real_scores(target, images, z))
        return values, gradient
    values, z, gradient, flag = flag_aware_gradient(target, images, labels, loss)
    best.offer(images, real_scores(target, images, z), flag > target.flag.threshold, crossed(labels, z))
    return values, gradient


def judge_final(target: AttackTarget, images: torch.Tensor, labels: torch.Tensor, loss: str,
                best: BestCandidate) -> None:
    """Offer a final iterate (no gradient needed): its real scores from one surrogate forward where z gives them,
    else one detector forward; against a flag, with its flag values."""
    if target.flag is not None:
        _, z = loss_only(target, images, labels, loss)
        best.offer(images, real_scores(target, images, z), flag_values(target, images) > target.flag.threshold,
                   crossed(labels, z))
    elif target.score_from_logit is not None:
        _, z = loss_only(target, images, labels, loss)
        best.offer(images, target.score_from_logit(z))
    else:
        best.offer(images, target.score(images))


def crossed(labels: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Per image: whether the surrogate's logit z is on the wrong side of its decision boundary z = 0."""
    return direction(labels).to(z.device) * z > 0


def uniform_in_ball(target: AttackTarget, generators: list[torch.Generator]) -> torch.Tensor:
    """A perturbation uniform in the target's eps ball, each image's drawn from its own generator: uniform in
    [-eps, eps] per pixel for L-inf; for L2 a Gaussian direction scaled to radius eps * u^(1/d), u uniform in
    [0, 1] and d the pixels of an image (the uniform law on the d-ball)."""
    import torch

    shape = target.images.shape[1:]
    if target.norm == L2:
        draws = []
        for g in generators:
            gaussian = torch.randn(shape, generator=g, device=target.images.device, dtype=torch.float64)
            radius = float(torch.rand((), generator=g, device=target.images.device, dtype=torch.float64))
            draws.append(gaussian / gaussian.norm() * target.eps * radius ** (1 / gaussian.numel()))
        return torch.stack(draws).to(target.images.dtype)
    draws = [torch.rand(shape, generator=g, device=target.images.device) for g in generators]
    return (2 * torch.stack(draws) - 1).to(target.images.dtype) * target.eps


def on_sphere(directions: torch.Tensor, eps: float) -> torch.Tensor:
    """Each image's ``directions`` scaled to L2 norm ``eps`` (a zero direction stays zero)."""
    import torch

    norms = directions.double().flatten(1).norm(dim=1).view(-1, *(1,) * (directions.ndim - 1))
    return (directions.double() * eps / torch.where(norms > 0, norms, torch.ones_like(norms))).to(directions.dtype)


def steepest(gradient: torch.Tensor, size: float | torch.Tensor, norm: str) -> torch.Tensor:
    """The steepest-ascent step of ``size`` in ``norm`` along ``gradient``: ``size * sign(g)`` for L-inf (Goodfellow
    et al. 2015), ``size * g / ||g||_2`` per image for L2 (the fast gradient method; a zero gradient gives no step)."""
    if norm == L2:
        return on_sphere(gradient, 1.0) * size
    return size * gradient.sign()


def random_signs(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """-1 or +1 with probability 1/2 each, from ``generator``."""
    import torch

    return torch.randint(0, 2, shape, generator=generator, device=device) * 2.0 - 1.0


def generators(target: AttackTarget) -> list[torch.Generator]:
    """One generator per image, made once per ``perturb`` so that restarts draw fresh numbers."""
    return [target.generator(index) for index in range(target.images.shape[0])]


class BestCandidate:
    """Per image, the candidate with the most adversarial real score seen so far: the highest for a normal image,
    the lowest for an anomalous one. Ties keep the earlier candidate; a NaN score never wins.

    Against a flag (``offer`` with ``flagged`` and ``crossed``) candidates rank first by whether they evade both,
    the decision (``crossed``) and the flag, then by whether they evade the flag, then by score."""

    def __init__(self, labels: torch.Tensor) -> None:
        self.sign = direction(labels).cpu().double()
        self.images: torch.Tensor | None = None
        self.scores: torch.Tensor | None = None
        self.levels: torch.Tensor | None = None

    def offer(self, images: torch.Tensor, scores: torch.Tensor | np.ndarray, flagged: torch.Tensor | None = None,
              crossed: torch.Tensor | None = None) -> None:
        """Consider one candidate per image with their real scores ``(B,)`` (and, against a flag, whether each is
        flagged and whether it crossed the decision boundary)."""
        import torch

        key = self._key(torch.as_tensor(as_numpy(scores), dtype=torch.float64).reshape(-1))
        level = torch.zeros_like(key)
        if flagged is not None:
            unflagged = ~torch.as_tensor(as_numpy(flagged)).reshape(-1).bool()
            level = unflagged.double() + (unflagged & torch.as_tensor(as_numpy(crossed)).reshape(-1).bool()).double()
        images = images.detach()
        if self.images is None:
            self.images, self.scores, self.levels = images.clone(), key, level
            return
        better = (level > self.levels) | ((level == self.levels) & (key > self.scores))
        self.images = torch.where(better.to(images.device).view(-1, 1, 1, 1), images, self.images)
        self.scores = torch.where(better, key, self.scores)
        self.levels = torch.where(better, level, self.levels)

    def _key(self, scores: torch.Tensor) -> torch.Tensor:
        import torch

        key = self.sign * scores
        return torch.where(torch.isnan(key), torch.full_like(key, -float("inf")), key)


def best_of_runs(target: AttackTarget, attack: str, restarts: int, run: Callable[..., None]) -> torch.Tensor:
    """Each image's most adversarial point over ``restarts`` calls of ``run(target, labels, generators, best)``,
    which offers its candidates to ``best`` (a ``BestCandidate``)."""
    labels = check_target(target, attack)
    draws = generators(target)
    best = BestCandidate(labels)
    for _ in range(restarts):
        run(target, labels, draws, best)
    return best.images


def as_numpy(values: object) -> np.ndarray:
    """A tensor or array-like as a numpy array (scores may come back as either)."""
    return values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)


def project(adversarial: torch.Tensor, clean: torch.Tensor, eps: float, norm: str = LINF) -> torch.Tensor:
    """The nearest point of the ``norm`` ball of radius ``eps`` around ``clean``, intersected with [0,1]
    (``threat.project``)."""
    from robustad.kit.threat import project as nearest

    return nearest(adversarial, clean, eps, norm)
