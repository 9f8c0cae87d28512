"""``torchattacks:<Name>``: any torchattacks class by name, on robustad's two-logit model.

torchattacks draws its random numbers from torch's global generator (and APGD, Square, FAB reseed it with their
``seed`` option), so each image is attacked alone under ``torch.random.fork_rng`` seeded with the image's own seed:
a row then does not depend on the batch size or the order of images, and the caller's generator is left alone.
The result is projected onto the L-inf eps ball intersected with [0,1] whatever the class's own norm.
torchattacks' own semantics are kept: e.g. its APGD and Square return the clean image where they could not flip the
surrogate's decision (robustad's ``apgd`` and ``square`` do not).
"""

from __future__ import annotations

import contextlib
import inspect
import io
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit import attacking as kit

if TYPE_CHECKING:
    import torch

    from robustad.contracts import AttackTarget

DLR_ONLY = {
    "APGDT": "torchattacks APGDT (it optimises only the targeted DLR loss)",
    "AutoAttack": "torchattacks AutoAttack (every version runs APGD-DLR or APGD-T, both on the DLR loss)",
}
SET_BY_ROBUSTAD = {"eps": "eps comes from the eps grid", "seed": "seeds are drawn per image from the cell seed"}


class TorchattacksAttack:
    """Any torchattacks class by name; further options are checked against that class's constructor."""

    name = "torchattacks"
    primary_option = "attack"  # what torchattacks:VALUE sets
    description = "any torchattacks class by name (torchattacks:MIFGSM); other options go to its constructor"

    def __init__(self, *, attack: str | None = None, **options: Any) -> None:
        names = _attack_names()
        if attack is None or str(attack).lower() not in names:
            raise RobustadError(f"unknown torchattacks attack {attack!r}; choose from: "
                                f"{', '.join(sorted(names.values()))}")
        self.attack = names[str(attack).lower()]
        if self.attack in DLR_ONLY:
            raise RobustadError(kit.dlr_refusal(DLR_ONLY[self.attack], "use robustad's apgd (loss=ce or margin) "
                                                "or worstcase instead"))
        import torchattacks

        self.attack_cls = getattr(torchattacks, self.attack)
        self.defaults = _constructor_defaults(self.attack_cls)
        self.options = {key: _coerce(self.attack, key, value, self.defaults) for key, value in options.items()}
        if self.options.get("loss") == "dlr":
            raise RobustadError(kit.dlr_refusal(f"torchattacks {self.attack} loss='dlr'"))
        if "n_classes" in self.defaults:
            self.options.setdefault("n_classes", 2)

    def perturb(self, target: AttackTarget) -> torch.Tensor:
        import torch

        labels = kit.check_target(target, f"torchattacks:{self.attack}")
        adversarial = [self._one(target, labels, index) for index in range(len(labels))]
        return kit.project(torch.cat(adversarial), target.images, target.eps)

    def describe(self, eps: float) -> dict:
        arguments = {**self.defaults, **self.options}
        described = {"steps": arguments.get("steps", 1), "alpha": arguments.get("alpha"),
                     "random_start": bool(arguments.get("random_start", False)),
                     "restarts": arguments.get("n_restarts", 1)}
        if "loss" in arguments:
            described["loss"] = arguments["loss"]
        if "n_queries" in arguments:
            described["queries"] = arguments["n_queries"]
        return described

    def _one(self, target: AttackTarget, labels: torch.Tensor, index: int) -> torch.Tensor:
        """Image ``index`` attacked alone, torch's generator seeded with its seed (restored afterwards)."""
        import torch

        seed = int(target.seeds[index])
        device = target.images.device
        arguments = {**self.options, **({"eps": target.eps} if "eps" in self.defaults else {}),
                     **({"seed": seed} if "seed" in self.defaults else {})}
        devices = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            torch.manual_seed(seed)
            with contextlib.redirect_stdout(io.StringIO()):  # torchattacks prints when a model has no parameters
                attack = self.attack_cls(target.model, **arguments)
            attack.set_device(device)
            image = target.images[index:index + 1].detach()
            return attack(image, labels[index:index + 1]).detach()


def _attack_names() -> dict[str, str]:
    """torchattacks' attack classes by lower-case name (its wrappers, which take other attacks, left out)."""
    import torchattacks

    return {name.lower(): name for name in torchattacks.__all__ if name not in torchattacks.__wrapper__}


def _constructor_defaults(attack_cls: type) -> dict:
    parameters = list(inspect.signature(attack_cls.__init__).parameters.values())[2:]  # after self, model
    return {p.name: p.default for p in parameters}


def _coerce(attack: str, key: str, value: Any, defaults: dict) -> Any:
    """Check an option against the torchattacks constructor and convert command-line strings to its type."""
    if key in SET_BY_ROBUSTAD or key not in defaults:
        valid = ", ".join(k for k in defaults if k not in SET_BY_ROBUSTAD) or "none"
        reason = SET_BY_ROBUSTAD.get(key, f"options: {valid}")
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
    register(TorchattacksAttack)
