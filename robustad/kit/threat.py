"""The threat model (PROTOCOL.md section 4): eps strings in [0,1] pixel units, and the 2-logit wrapper attacks see."""

from __future__ import annotations

from fractions import Fraction

import torch

from robustad.errors import RobustadError


class TwoLogit(torch.nn.Module):
    """Turn an anomaly-logit model ``x -> z (B,)`` into the 2-class logits ``[-z/2, +z/2]`` that torchattacks expects.

    softmax of these logits is ``[1 - sigmoid(z), sigmoid(z)]``, so cross-entropy with the ground-truth label
    (0 normal, 1 anomalous) is the logistic loss of z; a single logit would give a zero gradient.
    """

    def __init__(self, z_model: torch.nn.Module) -> None:
        super().__init__()
        self.z_model = z_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.z_model(x).reshape(-1, 1) / 2
        return torch.cat([-half, half], dim=1)


def parse_eps(text: str) -> float:
    """Read an L-inf radius written as a fraction (``"2/255"``) or a decimal (``"0.0078"``); it must lie in (0, 1]."""
    try:
        value = Fraction(str(text).strip())
    except (ValueError, ZeroDivisionError):
        raise RobustadError(f"eps {text!r} is not a number; write a fraction like 2/255 or a decimal like 0.0078") from None
    if not 0 < value <= 1:
        raise RobustadError(f"eps {text!r} is outside (0, 1]; eps is in [0,1] pixel units, e.g. 8/255")
    return float(value)


def project(adversarial: torch.Tensor, clean: torch.Tensor, eps: float) -> torch.Tensor:
    """Clip ``adversarial`` onto the L-inf ball of radius ``eps`` around ``clean``, intersected with [0,1]."""
    return torch.min(torch.max(adversarial, clean - eps), clean + eps).clamp(0, 1)

