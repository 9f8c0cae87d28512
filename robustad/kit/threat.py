"""The threat model (docs/protocol.md section 4): eps in [0,1] pixel units, the L-inf ball, the 8-bit grid, and the
two-logit wrapper attacks see."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from robustad.errors import RobustadError

if TYPE_CHECKING:
    import torch

PIXEL_LEVELS = 255  # 8-bit images: pixel values k/255


def parse_eps(text: str) -> float:
    """Read an L-inf radius written as a fraction (``"2/255"``) or a decimal (``"0.0078"``); it must lie in (0, 1]."""
    return float(_eps_fraction(text))


def canonical_eps(text: str) -> str:
    """The one spelling of an eps value: the simplest fraction with that float value (``0.00784313725490196`` and
    ``4/510`` are both ``2/255``), else the float's repr; equal experiments get equal cell keys."""
    value = float(_eps_fraction(text))
    simple = Fraction(value).limit_denominator(100_000)
    return str(simple) if float(simple) == value else repr(value)


def _eps_fraction(text: str) -> Fraction:
    try:
        value = Fraction(str(text).strip())
    except (ValueError, ZeroDivisionError):
        raise RobustadError(f"eps {text!r} is not a number; write a fraction like 2/255 "
                            "or a decimal like 0.0078") from None
    if not 0 < value <= 1:
        raise RobustadError(f"eps {text!r} is outside (0, 1]; eps is in [0,1] pixel units, e.g. 8/255")
    if float(value) == 0:
        raise RobustadError(f"eps {text!r} is 0 as a float; expected a positive number a float can hold, e.g. 1/255")
    return value


def project(adversarial: torch.Tensor, clean: torch.Tensor, eps: float) -> torch.Tensor:
    """Clip ``adversarial`` onto the L-inf ball of radius ``eps`` around ``clean``, intersected with [0,1]."""
    import torch

    return torch.min(torch.max(adversarial, clean - eps), clean + eps).clamp(0, 1)


def round_to_8bit(adversarial: torch.Tensor, clean: torch.Tensor, eps: float) -> torch.Tensor:
    """Adversarial images on the 8-bit grid (what survives saving as PNG), still inside the eps ball and [0,1].

    Clean pixels lie on the grid, so with eps = k/255 rounding never leaves the ball; for other eps the rounded
    value is clipped to the grid points inside the ball (floor(255 eps) levels from the clean pixel).
    """
    import torch

    levels = torch.round(adversarial * PIXEL_LEVELS)
    clean_levels = torch.round(clean * PIXEL_LEVELS)
    reach = float(int(eps * PIXEL_LEVELS + 1e-9))
    levels = torch.min(torch.max(levels, clean_levels - reach), clean_levels + reach).clamp(0, PIXEL_LEVELS)
    return levels / PIXEL_LEVELS


def two_logit(z: torch.Tensor) -> torch.Tensor:
    """The 2-class logits ``[-z/2, +z/2]`` of anomaly logits z ``(B,)``: softmax gives ``[1 - sigmoid(z),
    sigmoid(z)]``, so cross-entropy with the label (0 normal, 1 anomalous) is the logistic loss of z; a single
    logit would give attacks a zero gradient."""
    import torch

    half = z.reshape(-1, 1) / 2
    return torch.cat([-half, half], dim=1)
