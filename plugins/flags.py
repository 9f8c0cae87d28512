"""Attack flags (docs/protocol.md section 6): per-image statistics that should be high on attacked images.

The engine fits each flag's threshold on the clean calib images at ``--flag-fpr``; a flag here is only its
statistic. Every statistic is differentiable in the images (straight-through where a step is not), so flag-aware
attacks can descend it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit import options

if TYPE_CHECKING:
    import torch

    from robustad.contracts import FlagView

SQUEEZERS = ("median", "bits")


class Entropy:
    """The seed paper's flag: the predictive entropy H(p) of the calibrated posterior, in nats."""

    name = "entropy"
    description = "predictive entropy H(p) of the calibrated posterior (the seed paper's flag)"
    reads = "probabilities"

    def statistic(self, view: FlagView) -> torch.Tensor:
        import torch

        p = view.probs.double()
        return -(torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p))


class Squeeze:
    """Feature squeezing (Xu et al. 2018): |s(x) - s(squeeze(x))|, the change of the detector's score when the
    image is squeezed by a median filter (``size`` x ``size``) or a reduction to ``bits`` bits per channel."""

    name = "squeeze"
    primary_option = "squeezer"  # what squeeze:VALUE sets
    description = "feature squeezing: |score(x) - score(squeezed x)|, squeezer median (size) or bits (bits)"
    reads = "images"

    def __init__(self, *, squeezer: str = "median", size: int = 2, bits: int = 5) -> None:
        if squeezer not in SQUEEZERS:
            raise RobustadError(f"flag {self.name!r} option squeezer={squeezer!r}: expected one of "
                                f"{', '.join(SQUEEZERS)}")
        self.squeezer = squeezer
        self.size = options.integer(f"flag {self.name!r}", "size", size, 2)
        self.bits = options.integer(f"flag {self.name!r}", "bits", bits, 1, 7)

    def squeeze(self, images: torch.Tensor) -> torch.Tensor:
        """The squeezed images; bit-depth rounding passes the gradient straight through (BPDA)."""
        if self.squeezer == "bits":
            levels = 2 ** self.bits - 1
            return images + (images.mul(levels).round().div(levels) - images).detach()
        return median_filter(images, self.size)

    def statistic(self, view: FlagView) -> torch.Tensor:
        return (view.scores - view.score(self.squeeze(view.images))).abs()


class Consistency:
    """The spread (standard deviation) of the detector's score over ``draws`` Gaussian noise draws of standard
    deviation ``sigma`` (pixels in [0,1]), seeded per image so an image and its attacked version see the same draws."""

    name = "consistency"
    primary_option = "draws"  # what consistency:VALUE sets
    description = "std of the detector's score under `draws` Gaussian noise draws of std `sigma`, seeded per image"
    reads = "images"

    def __init__(self, *, draws: int = 8, sigma: float = 0.02) -> None:
        self.draws = options.integer(f"flag {self.name!r}", "draws", draws, 2)
        self.sigma = options.fraction(f"flag {self.name!r}", "sigma", sigma)

    def statistic(self, view: FlagView) -> torch.Tensor:
        import torch

        images = view.images
        noise = torch.stack([torch.randn((self.draws, *images.shape[1:]), generator=view.generator(i),
                                         device=images.device, dtype=images.dtype) for i in range(images.shape[0])])
        noisy = (images.unsqueeze(1) + self.sigma * noise).clamp(0, 1).flatten(0, 1)
        return view.score(noisy).reshape(images.shape[0], self.draws).std(dim=1)


def median_filter(images: torch.Tensor, size: int) -> torch.Tensor:
    """A ``size`` x ``size`` median filter per channel with reflected borders (the lower median of an even window,
    as Xu et al.'s 2x2 filter); torch's median passes the gradient to the chosen pixel."""
    import torch.nn.functional as F

    before, after = (size - 1) // 2, size // 2
    padded = F.pad(images, (before, after, before, after), mode="reflect")
    windows = padded.unfold(2, size, 1).unfold(3, size, 1)
    return windows.reshape(*windows.shape[:4], size * size).median(dim=-1).values


@hookimpl
def register_flags(register):
    register(Entropy)
    register(Squeeze)
    register(Consistency)
