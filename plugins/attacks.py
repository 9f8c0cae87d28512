"""robustad's own attacks, in the L-inf or the L2 ball (``target.norm``): the ``noise`` control, ``fgsm``, ``pgd`` and
``apgd`` (Croce & Hein 2020). Under L2 a signed step becomes a step along g / ||g||_2 and the projection the one
onto the L2 ball intersected with [0,1].

All work on ``target.model``'s two logits ``[-z/2, z/2]`` with the ground-truth labels (normal images pushed towards
"anomalous", anomalous ones towards "normal"), draw every random number from the image's own generator (a result
does not depend on the batch it is in), and return, per image, the iterate with the most adversarial real detector
score, not the last one (docs/protocol.md section 4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit import attacking as kit
from robustad.kit.threat import L2, NORMS  # every attack here works in both balls

if TYPE_CHECKING:
    import torch

    from robustad.contracts import AttackTarget

NOISE_DISTRIBUTIONS = ("sign", "uniform")


class Noise:
    """The control: a random perturbation of the same size, no model involved. Under L2, ``sign`` is a random
    sign per pixel scaled to L2 norm eps (a random vertex of the cube, on the sphere) and ``uniform`` is uniform in
    the L2 ball."""

    name = "noise"
    primary_option = "distribution"  # what noise:VALUE sets
    description = "control: random +-eps per pixel (distribution=sign) or uniform in the eps ball, seeded per image"
    needs_surrogate = False
    norms = NORMS
    control = True  # what attacks are read against: the engine gives it no clean candidate

    def __init__(self, *, distribution: str = "sign") -> None:
        if distribution not in NOISE_DISTRIBUTIONS:
            raise RobustadError(f"noise option distribution={distribution!r}: expected one of "
                                f"{', '.join(NOISE_DISTRIBUTIONS)}")
        self.distribution = distribution

    def perturb(self, target: AttackTarget) -> torch.Tensor:
        import torch

        kit.check_target(target, self.name)
        generators = kit.generators(target)
        if self.distribution == "uniform":
            delta = kit.uniform_in_ball(target, generators)
        else:
            shape, device = tuple(target.images.shape[1:]), target.images.device
            signs = torch.stack([kit.random_signs(shape, g, device) for g in generators])
            signs = signs.to(target.images.dtype)
            delta = kit.on_sphere(signs, target.eps) if target.norm == L2 else target.eps * signs
        return kit.project(target.images + delta, target.images, target.eps, target.norm)

    def describe(self, eps: float) -> dict:
        return {"steps": 0, "random_start": True, "restarts": 1}


class FGSM:
    """One steepest-ascent step of size eps from the clean image: signed for L-inf (Goodfellow et al. 2015), along
    g / ||g||_2 for L2 (the fast gradient method)."""

    name = "fgsm"
    primary_option = "loss"  # what fgsm:VALUE sets
    description = "FGSM: one signed-gradient step of size eps on the loss (ce or margin); g/||g|| under L2"
    norms = NORMS

    def __init__(self, *, loss: str = "margin") -> None:
        self.loss = kit.check_loss(self.name, loss)

    def perturb(self, target: AttackTarget) -> torch.Tensor:
        labels = kit.check_target(target, self.name)
        _, _, gradient = kit.loss_and_gradient(target, target.images, labels, self.loss)
        step = kit.steepest(gradient, target.eps, target.norm)
        return kit.project(target.images + step, target.images, target.eps, target.norm)

    def describe(self, eps: float) -> dict:
        return {"steps": 1, "alpha": eps, "random_start": False, "restarts": 1, "loss": self.loss}


class PGD:
    """Projected gradient ascent with signed steps of ``alpha_ratio * eps`` (Madry et al. 2018), best iterate kept."""

    name = "pgd"
    primary_option = "steps"  # what pgd:VALUE sets
    description = "PGD: signed steps of alpha_ratio*eps from a per-image random start; keeps each image's best iterate"
    norms = NORMS

    later_options = ("flag_aware", "flag_posterior")  # recorded only when set: older pgd cells keep their keys

    def __init__(self, *, steps: int = 10, alpha_ratio: float = 0.25, random_start: bool = True,
                 restarts: int = 1, loss: str = "margin", flag_aware: str = "", flag_posterior: str = "platt") -> None:
        """``flag_aware``: a flag spec to evade as well (docs/protocol.md section 4); ``flag_posterior``: the
        calibrator whose posterior a flag that reads probabilities is differentiated through."""
        kit.check_positive(self.name, steps=steps, alpha_ratio=alpha_ratio, restarts=restarts)
        if restarts > 1 and not random_start:
            raise RobustadError(f"pgd option restarts={restarts} needs random_start=true: without a random start "
                                "every restart is the same run")
        self.steps = steps
        self.alpha_ratio = alpha_ratio
        self.random_start = random_start
        self.restarts = restarts
        self.loss = kit.check_loss(self.name, loss)
        self.flag_aware, self.flag_posterior = flag_aware or None, flag_posterior

    def perturb(self, target: AttackTarget) -> torch.Tensor:
        return kit.best_of_runs(target, self.name, self.restarts, self._run)

    def describe(self, eps: float) -> dict:
        return {"steps": self.steps, "alpha": self.alpha_ratio * eps, "random_start": self.random_start,
                "restarts": self.restarts, "loss": self.loss, **_flag_setting(self.flag_aware)}

    def _run(self, target: AttackTarget, labels: torch.Tensor, generators: list, best: kit.BestCandidate) -> None:
        """One run from a random start (or the clean images); every iterate is offered to ``best``."""
        clean, eps, norm = target.images, target.eps, target.norm
        alpha = self.alpha_ratio * eps
        current = kit.project(clean + kit.uniform_in_ball(target, generators), clean, eps, norm) \
            if self.random_start else clean
        for _ in range(self.steps):
            _, gradient = kit.judged_gradient(target, current, labels, self.loss, best)
            current = kit.project(current + kit.steepest(gradient, alpha, norm), clean, eps, norm)
        kit.judge_final(target, current, labels, self.loss, best)


class APGD:
    """Auto-PGD (Croce & Hein 2020): signed steps (L2: along g / ||g||_2, as APGD-L2) with momentum 0.75 from a step
    size of 2 eps that halves at checkpoints where the loss stopped improving, restarting from the best point; best
    iterate kept. ``loss`` may join losses with ``+`` (``ce+margin``, the default, as AutoAttack runs APGD with
    cross-entropy and with a margin loss): ``restarts`` runs with each, the best point of all kept."""

    name = "apgd"
    primary_option = "steps"  # what apgd:VALUE sets
    description = "Auto-PGD (Croce & Hein 2020), loss ce, margin or ce+margin; keeps each image's best iterate"
    norms = NORMS
    momentum = 0.75
    rho = 0.75  # a step size is kept while at least this share of the steps since the last checkpoint raised the loss

    later_options = ("flag_aware", "flag_posterior")  # recorded only when set: older apgd cells keep their keys

    def __init__(self, *, steps: int = 100, restarts: int = 1, loss: str = "ce+margin", flag_aware: str = "",
                 flag_posterior: str = "platt") -> None:
        """``flag_aware`` and ``flag_posterior`` as for ``pgd``."""
        kit.check_positive(self.name, steps=steps, restarts=restarts)
        self.steps = steps
        self.restarts = restarts
        self.losses = tuple(dict.fromkeys(kit.check_loss(self.name, part.strip()) for part in str(loss).split("+")))
        self.loss = "+".join(self.losses)
        self.flag_aware, self.flag_posterior = flag_aware or None, flag_posterior

    def perturb(self, target: AttackTarget) -> torch.Tensor:
        runs = [loss for loss in self.losses for _ in range(self.restarts)]
        return kit.best_of_runs(target, self.name, len(runs), lambda *args: self._run(*args, loss=runs.pop(0)))

    def describe(self, eps: float) -> dict:
        return {"steps": self.steps, "random_start": True, "restarts": self.restarts, "loss": self.loss,
                **_flag_setting(self.flag_aware)}

    def _run(self, target: AttackTarget, labels: torch.Tensor, generators: list, best: kit.BestCandidate,
             loss: str) -> None:
        """One run of ``loss`` from a random start; every iterate is offered to ``best``."""
        import torch

        clean, eps, norm = target.images, target.eps, target.norm
        current = kit.project(clean + kit.uniform_in_ball(target, generators), clean, eps, norm)
        value, gradient = kit.judged_gradient(target, current, labels, loss, best)
        top, top_loss, top_gradient = current, value, gradient  # the highest-loss point: where a halving restarts
        previous = current
        step = torch.full((len(labels), 1, 1, 1), 2.0 * eps, dtype=clean.dtype, device=clean.device)
        checkpoints = set(apgd_checkpoints(self.steps)[1:])
        last_checkpoint, rises = 0, torch.zeros(len(labels), device=clean.device)
        halved_last = torch.ones(len(labels), dtype=torch.bool, device=clean.device)
        top_loss_at_last_checkpoint = top_loss.clone()
        for iteration in range(self.steps):
            moved = kit.project(current + kit.steepest(gradient, step, norm), clean, eps, norm)
            weight = self.momentum if iteration > 0 else 1.0
            following = kit.project(current + weight * (moved - current) + (1 - weight) * (current - previous),
                                    clean, eps, norm)
            previous, current = current, following
            if iteration == self.steps - 1:  # the last iterate needs its score, not its gradient
                kit.judge_final(target, current, labels, loss, best)
                return
            new_loss, gradient = kit.judged_gradient(target, current, labels, loss, best)
            rises += (new_loss > value).float()
            value = new_loss
            improved = value > top_loss
            top = torch.where(improved.view(-1, 1, 1, 1), current, top)
            top_gradient = torch.where(improved.view(-1, 1, 1, 1), gradient, top_gradient)
            top_loss = torch.where(improved, value, top_loss)
            if iteration + 1 in checkpoints:
                stalled = rises < self.rho * (iteration + 1 - last_checkpoint)
                flat = ~halved_last & (top_loss <= top_loss_at_last_checkpoint)
                halve = stalled | flat
                step = torch.where(halve.view(-1, 1, 1, 1), step / 2, step)
                current = torch.where(halve.view(-1, 1, 1, 1), top, current)
                previous = torch.where(halve.view(-1, 1, 1, 1), top, previous)
                gradient = torch.where(halve.view(-1, 1, 1, 1), top_gradient, gradient)
                value = torch.where(halve, top_loss, value)
                halved_last, top_loss_at_last_checkpoint = halve, top_loss.clone()
                last_checkpoint, rises = iteration + 1, torch.zeros_like(rises)


def apgd_checkpoints(steps: int) -> list[int]:
    """APGD's checkpoints ``ceil(p_j * steps)``: p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06),
    while p_j <= 1 (computed in hundredths, so no float rounding moves a checkpoint)."""
    percents = [0, 22]
    while percents[-1] + max(percents[-1] - percents[-2] - 3, 6) <= 100:
        percents.append(percents[-1] + max(percents[-1] - percents[-2] - 3, 6))
    return sorted({-(-percent * steps // 100) for percent in percents})


def _flag_setting(flag_aware: str | None) -> dict:
    """The row's ``flag_aware`` column: the flag a flag-aware attack evades (absent for a plain attack)."""
    return {} if flag_aware is None else {"flag_aware": flag_aware}


@hookimpl
def register_attacks(register):
    register(Noise)
    register(FGSM)
    register(PGD)
    register(APGD)
