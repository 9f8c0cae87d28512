"""Attacks from torchattacks (PROTOCOL.md section 4): ``fgsm``, ``pgd``, and any other torchattacks class by name.

Every attack gets the 2-logit model built by ``robustad.kit.threat.TwoLogit`` and the ground-truth labels, so the
untargeted attack pushes normal images towards "anomalous" and anomalous ones towards "normal". Results are
projected onto the L-inf eps ball around the clean images, intersected with [0,1], so every attack honours the
protocol's threat model whatever its own norm.
"""

from __future__ import annotations

import contextlib
import inspect
import io
from fractions import Fraction
from typing import Any

import numpy as np
import torch
import torchattacks

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit.threat import project

ATTACK_NAMES = {name.lower(): name for name in torchattacks.__all__ if name not in torchattacks.__wrapper__}


class FGSM:
    """One signed-gradient step of size eps."""

    name = "fgsm"
    description = "FGSM: one signed-gradient step of size eps (torchattacks)"

    def __init__(self) -> None:
        """FGSM has no options (an explicit signature, so the registry does not read ``object``'s)."""

    def perturb(self, model: torch.nn.Module, images: torch.Tensor, labels: Any, eps: float) -> torch.Tensor:
        return run_attack(torchattacks.FGSM, {"eps": eps}, model, images, labels, eps)

    def describe(self, eps: float) -> dict:
        return {"steps": 1, "alpha": eps, "random_start": False, "restarts": 1}


class PGD:
    """Projected gradient descent with a seeded uniform random start; restarts keep each image's strongest run."""

    name = "pgd"
    description = "PGD: signed-gradient steps of alpha_ratio*eps from a seeded random start (torchattacks)"

    def __init__(self, *, steps: int = 10, alpha_ratio: float = 0.25, random_start: bool = True,
                 restarts: int = 1, seed: int | None = None) -> None:
        for option, value in (("steps", steps), ("restarts", restarts)):
            if value < 1:
                raise RobustadError(f"pgd option {option}={value}: expected an integer >= 1")
        if not alpha_ratio > 0:
            raise RobustadError(f"pgd option alpha_ratio={alpha_ratio}: expected a number > 0")
        self.steps = steps
        self.alpha_ratio = alpha_ratio
        self.random_start = random_start
        self.restarts = restarts
        self.seed = seed

    def perturb(self, model: torch.nn.Module, images: torch.Tensor, labels: Any, eps: float) -> torch.Tensor:
        options = {"eps": eps, "alpha": self.alpha_ratio * eps, "steps": self.steps,
                   "random_start": self.random_start}
        return run_attack(torchattacks.PGD, options, model, images, labels, eps, self.seed, self.restarts)

    def describe(self, eps: float) -> dict:
        return {"steps": self.steps, "alpha": self.alpha_ratio * eps, "random_start": self.random_start,
                "restarts": self.restarts}


class TorchattacksAttack:
    """Any torchattacks class by name; further options are checked against that class's constructor."""

    name = "torchattacks"
    description = "any torchattacks class by name (attack=MIFGSM); other options go to its constructor"

    def __init__(self, *, attack: str | None = None, seed: int | None = None, **options: Any) -> None:
        choices = ", ".join(sorted(ATTACK_NAMES.values()))
        if attack is None or str(attack).lower() not in ATTACK_NAMES:
            raise RobustadError(f"unknown torchattacks attack {attack!r}; choose from: {choices}")
        self.attack = ATTACK_NAMES[str(attack).lower()]
        self.attack_cls = getattr(torchattacks, self.attack)
        self.seed = seed
        self.defaults = _constructor_defaults(self.attack_cls)
        self.options = {key: _coerce(self.attack, key, value, self.defaults) for key, value in options.items()}
        if "n_classes" in self.defaults:
            self.options.setdefault("n_classes", 2)
        if "seed" in self.defaults and seed is not None:
            self.options["seed"] = seed

    def perturb(self, model: torch.nn.Module, images: torch.Tensor, labels: Any, eps: float) -> torch.Tensor:
        arguments = self._arguments(eps)
        if "seed" in self.defaults and self.seed is None:
            arguments["seed"] = torch.initial_seed()  # the caller's seed (the runner's: the cell seed)
        return run_attack(self.attack_cls, arguments, model, images, labels, eps, self.seed)

    def describe(self, eps: float) -> dict:
        arguments = {**self.defaults, **self._arguments(eps)}
        return {"steps": arguments.get("steps", 1), "alpha": arguments.get("alpha"),
                "random_start": bool(arguments.get("random_start", False)),
                "restarts": arguments.get("n_restarts", 1)}

    def _arguments(self, eps: float) -> dict:
        return {**self.options, "eps": eps} if "eps" in self.defaults else dict(self.options)


def run_attack(attack_cls: type, options: dict, model: torch.nn.Module, images: torch.Tensor, labels: Any,
               eps: float, seed: int | None = None, restarts: int = 1) -> torch.Tensor:
    """Run a torchattacks class, under its own seed when given (else the caller's RNG, which the runner seeds
    with the cell seed); with restarts, keep each image's most adversarial result."""
    if not 0 < eps <= 1:
        raise RobustadError(f"eps={eps}: expected a value in (0, 1] ([0,1] pixel units)")
    images = images.detach()
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise RobustadError(f"attack images span [{images.min():.3g}, {images.max():.3g}]; expected [0,1] pixels")
    targets = _label_tensor(labels, images)
    best, best_margin = images, None
    with torch.enable_grad(), _seeded(seed, images.device):
        for _ in range(restarts):
            with contextlib.redirect_stdout(io.StringIO()):  # torchattacks prints when a model has no parameters
                attack = attack_cls(model, **options)
            attack.set_device(images.device)
            adversarial = project(attack(images, targets), images, eps)
            if restarts == 1:
                return adversarial
            margin = _adversarial_margin(model, adversarial, targets)
            if best_margin is None:
                best, best_margin = adversarial, margin
            else:
                better = margin > best_margin
                best = torch.where(better.view(-1, 1, 1, 1), adversarial, best)
                best_margin = torch.where(better, margin, best_margin)
    return best


def _adversarial_margin(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Wrong-class logit minus true-class logit per image: larger is more adversarial."""
    with torch.no_grad():
        logits = model(images)
    return logits.gather(1, (1 - targets).view(-1, 1)).squeeze(1) - logits.gather(1, targets.view(-1, 1)).squeeze(1)


def _label_tensor(labels: Any, images: torch.Tensor) -> torch.Tensor:
    values = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if values.shape[0] != images.shape[0] or not np.isin(values, (0, 1)).all():
        raise RobustadError(f"attack labels {values.tolist()[:8]}: expected one 0/1 label per image "
                            f"({images.shape[0]} images)")
    return torch.as_tensor(values.astype(np.int64), device=images.device)


@contextlib.contextmanager
def _seeded(seed: int | None, device: torch.device):
    """Seed torch's RNG for the attack's random start without disturbing the caller's RNG state (None: use it)."""
    if seed is None:
        yield
        return
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _constructor_defaults(attack_cls: type) -> dict:
    parameters = list(inspect.signature(attack_cls.__init__).parameters.values())[2:]  # after self, model
    return {p.name: p.default for p in parameters}


def _coerce(attack: str, key: str, value: Any, defaults: dict) -> Any:
    """Check an option against the torchattacks constructor and convert command-line strings to its type."""
    if key not in defaults or key == "eps":
        valid = ", ".join(k for k in defaults if k not in ("eps", "seed")) or "none"
        reason = "eps comes from the eps grid" if key == "eps" else f"options: {valid}"
        raise RobustadError(f"torchattacks {attack} has no option {key!r}; {reason}")
    default = defaults[key]
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value
    try:
        if isinstance(default, bool):
            return {"true": True, "1": True, "false": False, "0": False}[value.strip().lower()]
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(Fraction(value.strip()))
    except (KeyError, ValueError, ZeroDivisionError):
        raise RobustadError(f"torchattacks {attack} option {key}={value!r}: expected "
                            f"{type(default).__name__} like {default!r}") from None
    return value


@hookimpl
def register_attacks(register):
    register(FGSM)
    register(PGD)
    register(TorchattacksAttack)
