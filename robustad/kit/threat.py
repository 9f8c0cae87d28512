"""The threat model (docs/protocol.md section 4): eps in [0,1] pixel units, the L-inf or L2 ball, the 8-bit grid,
and the two-logit wrapper attacks see; beside the balls, natural corruptions, whose eps is a severity."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from robustad.errors import RobustadError

if TYPE_CHECKING:
    import torch

PIXEL_LEVELS = 255  # 8-bit images: pixel values k/255
LINF, L2 = "linf", "l2"
NORMS = (LINF, L2)  # the balls: an attack's result must lie within eps of the clean image
CORRUPTION = "corruption"  # natural corruptions (ImageNet-C): eps is an integer severity, no ball around the image
THREAT_MODELS = (*NORMS, CORRUPTION)
MAX_SEVERITY = 5  # ImageNet-C's severities 1-5; severity 0 is the clean image
MAX_L2_EPS = 1000  # an L2 radius above this is a typo (a 3 x 224 x 224 image has L2 diameter 388)
PROJECTION_STEPS = 60  # bisection steps of the L2 projection: the scale is found to 2**-60 of its range


def check_norm(norm: str) -> str:
    """``norm`` if it is one of ``THREAT_MODELS``, else a one-line error."""
    if norm not in THREAT_MODELS:
        raise RobustadError(f"--norm {norm!r}: expected one of {', '.join(THREAT_MODELS)}")
    return norm


def is_ball(norm: str) -> bool:
    """Whether ``norm`` bounds the perturbation by eps (L-inf, L2), rather than naming a corruption's severity."""
    return norm in NORMS


def parse_eps(text: str, norm: str = LINF) -> float:
    """Read a radius written as a fraction (``"2/255"``) or a decimal (``"0.0078"``): in (0, 1] for L-inf, in
    (0, ``MAX_L2_EPS``] for L2 (the L2 norm of the perturbation of the [0,1] image, e.g. 0.5); under
    ``corruption`` an integer severity in [0, ``MAX_SEVERITY``] (0: the clean image)."""
    return float(_eps_fraction(text, norm))


def canonical_eps(text: str, norm: str = LINF) -> str:
    """The one spelling of an eps value: the simplest fraction with that float value (``0.00784313725490196`` and
    ``4/510`` are both ``2/255``), else the float's repr; equal experiments get equal cell keys."""
    value = float(_eps_fraction(text, norm))
    simple = Fraction(value).limit_denominator(100_000)
    return str(simple) if float(simple) == value else repr(value)


def _eps_fraction(text: str, norm: str) -> Fraction:
    try:
        value = Fraction(str(text).strip())
    except (ValueError, ZeroDivisionError):
        raise RobustadError(f"eps {text!r} is not a number; write a fraction like 2/255 "
                            "or a decimal like 0.0078") from None
    if check_norm(norm) == CORRUPTION:
        return check_severity(value, text)
    if norm == L2:
        if not 0 < value <= MAX_L2_EPS:
            raise RobustadError(f"eps {text!r} is outside (0, {MAX_L2_EPS}]; an L2 eps is the L2 norm of the "
                                "perturbation of the [0,1] image, e.g. 0.5")
    elif not 0 < value <= 1:
        raise RobustadError(f"eps {text!r} is outside (0, 1]; eps is in [0,1] pixel units, e.g. 8/255")
    if float(value) == 0:
        raise RobustadError(f"eps {text!r} is 0 as a float; expected a positive number a float can hold, e.g. 1/255")
    return value


def check_severity(value: Fraction | float, text: object = None) -> Fraction:
    """A corruption severity: an integer in [0, ``MAX_SEVERITY``], else a one-line error naming ``text``."""
    if value != int(value) or not 0 <= value <= MAX_SEVERITY:
        raise RobustadError(f"severity {text if text is not None else value!r} under --norm {CORRUPTION}: expected an "
                            f"integer from 0 (clean) to {MAX_SEVERITY}")
    return Fraction(int(value))


def project(adversarial: torch.Tensor, clean: torch.Tensor, eps: float, norm: str = LINF) -> torch.Tensor:
    """The point of the ``norm`` ball of radius ``eps`` around ``clean``, intersected with [0,1], nearest to
    ``adversarial`` (per image): a clip for L-inf, ``project_l2`` for L2."""
    import torch

    if norm == L2:
        return project_l2(adversarial, clean, eps)
    return torch.min(torch.max(adversarial, clean - eps), clean + eps).clamp(0, 1)


def project_l2(adversarial: torch.Tensor, clean: torch.Tensor, eps: float) -> torch.Tensor:
    """The Euclidean projection of each image onto {x in [0,1]: ||x - clean||_2 <= eps} (``clean`` in [0,1]).

    The Lagrangian of the ball constraint separates per pixel, so the projection is ``clip(clean + t * (y - clean))``
    for the largest t in [0, 1] whose point is inside the ball (t = 1: the box alone); the distance grows with t, so
    t is found by bisection, always keeping a t whose point is inside the ball.
    """
    import torch

    delta = adversarial - clean
    shape = (-1,) + (1,) * (delta.ndim - 1)

    def at(t: torch.Tensor) -> torch.Tensor:
        return (clean + t.to(delta.dtype).view(shape) * delta).clamp(0, 1)

    def distance(t: torch.Tensor) -> torch.Tensor:
        return l2_distance(at(t), clean)

    low = torch.zeros(delta.shape[0], dtype=torch.float64, device=delta.device)
    high = torch.ones_like(low)
    inside = distance(high) <= eps
    low = torch.where(inside, high, low)
    for _ in range(PROJECTION_STEPS):
        middle = (low + high) / 2
        fits = distance(middle) <= eps
        low, high = torch.where(fits, middle, low), torch.where(fits, high, middle)
    return at(low)


def l2_distance(images: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Per-image L2 distance ``(B,)``, summed in float64 (so that a check against eps does not depend on the
    order float32 would add 150 000 squares in)."""
    return (images.double() - clean.double()).flatten(1).norm(dim=1)


def distance(images: torch.Tensor, clean: torch.Tensor, norm: str) -> float:
    """The largest per-image ``norm`` distance of a batch (0 for an empty one)."""
    if not images.numel():
        return 0.0
    if norm == L2:
        return float(l2_distance(images, clean).max())
    return float((images - clean).abs().max())


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
