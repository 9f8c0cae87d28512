"""Input-transformation defenses in front of the backbone: the classic preprocessing defenses (Guo et al. 2018:
JPEG, bit-depth reduction, median and Gaussian filtering; Xu et al. 2018, feature squeezing), Gaussian noise
averaged over draws, and randomized median smoothing of the anomaly score (Chiang et al. 2020, "Detection as
Regression"). The engine makes attacks adaptive to them: BPDA through the non-differentiable ones, EOT through
the randomized ones (docs/protocol.md section 4)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit import options

if TYPE_CHECKING:
    import torch

MAX_KERNEL = 15
"""The largest median window side: its memory grows with the square of the side (a 224 px batch of 8 images
unfolds into about 1 GB at 15), and the feature-squeezing papers use 2 to 5."""
MAX_BLUR_SIGMA = 20.0
"""Pixels; a blur wider than this leaves no structure at the resolutions detectors use."""
MAX_NOISE_SIGMA = 10.0
"""In [0,1] pixel units: ten times the whole pixel range is noise alone (Cohen et al. 2019 go up to 1)."""
MAX_SAMPLES = 10_000
"""Draws per score: every draw is one backbone pass per image, and EOT multiplies it again."""


class JPEG:
    """JPEG compression at ``quality`` (torchvision's libjpeg), image by image; not differentiable."""

    name = "jpeg"
    description = "JPEG compression and decompression (quality); BPDA identity gradient"
    primary_option = "quality"
    differentiable = False
    randomized = False

    def __init__(self, *, quality: int = 75) -> None:
        options.integer(self.name, "quality", quality, 1, 100)
        self.quality = quality

    def transform(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        import torch
        from torchvision.io import decode_jpeg, encode_jpeg

        pixels = (images.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
        decoded = [decode_jpeg(encode_jpeg(image, quality=self.quality)) for image in pixels]
        return torch.stack(decoded).to(images.device, images.dtype) / 255


class BitDepth:
    """Each channel rounded to ``bits`` bits (feature squeezing); not differentiable (the rounding's gradient is
    zero almost everywhere)."""

    name = "bitdepth"
    description = "bit-depth reduction to `bits` bits per channel; BPDA identity gradient"
    primary_option = "bits"
    differentiable = False
    randomized = False

    def __init__(self, *, bits: int = 4) -> None:
        options.integer(self.name, "bits", bits, 1, 8)
        self.levels = 2 ** bits - 1

    def transform(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return (images * self.levels).round() / self.levels


class Median:
    """A ``kernel`` x ``kernel`` median filter (reflect padding); differentiable almost everywhere: the gradient
    goes to the pixel each window selects."""

    name = "median"
    description = "median filter (kernel, odd); differentiable"
    primary_option = "kernel"
    differentiable = True
    randomized = False

    def __init__(self, *, kernel: int = 3) -> None:
        if options.integer(self.name, "kernel", kernel, 1, MAX_KERNEL) % 2 == 0:
            raise RobustadError(f"{self.name} option kernel={kernel!r}: expected an odd integer from 1 to "
                                f"{MAX_KERNEL}")
        self.kernel = kernel

    @property
    def reach(self) -> int:
        """Pixels the window reads on each side (the reflect padding must be smaller than the image)."""
        return self.kernel // 2

    def transform(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        import torch.nn.functional as F

        half = self.kernel // 2
        padded = F.pad(images, (half, half, half, half), mode="reflect")
        windows = padded.unfold(2, self.kernel, 1).unfold(3, self.kernel, 1)
        return windows.reshape(*windows.shape[:4], -1).median(dim=-1).values


class Blur:
    """A Gaussian blur of standard deviation ``sigma`` pixels (kernel 2 * ceil(3 sigma) + 1); differentiable."""

    name = "blur"
    description = "Gaussian blur (sigma in pixels); differentiable"
    primary_option = "sigma"
    differentiable = True
    randomized = False

    def __init__(self, *, sigma: float = 1.0) -> None:
        options.positive(self.name, "sigma", sigma, MAX_BLUR_SIGMA)
        self.sigma = sigma

    @property
    def reach(self) -> int:
        """Pixels the kernel reads on each side."""
        return math.ceil(3 * self.sigma)

    def transform(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        from torchvision.transforms.functional import gaussian_blur

        size = 2 * self.reach + 1
        return gaussian_blur(images, [size, size], [self.sigma, self.sigma])


class GaussianNoise:
    """Gaussian noise of standard deviation ``sigma`` (in [0,1] pixel units) added to every image; the score is
    the mean over ``samples`` draws (what an attack may query); rows report it over ``report_samples`` other draws
    (0: the engine's default, at least ``samples`` and the default EOT draws)."""

    name = "gaussian"
    description = "additive Gaussian noise (sigma), score averaged over `samples` draws; randomized"
    primary_option = "sigma"
    differentiable = True
    randomized = True
    aggregate = "mean"

    def __init__(self, *, sigma: float = 0.05, samples: int = 8, report_samples: int = 0) -> None:
        options.positive(self.name, "sigma", sigma, MAX_NOISE_SIGMA)
        options.integer(self.name, "samples", samples, 1, MAX_SAMPLES)
        options.integer(self.name, "report_samples", report_samples, 0, MAX_SAMPLES)
        self.sigma, self.samples, self.report_samples = sigma, samples, report_samples

    def transform(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        import torch

        noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
        return images + self.sigma * noise


class Smoothing(GaussianNoise):
    """Randomized median smoothing of the anomaly score (Chiang et al. 2020): the median of the detector's score
    over ``samples`` Gaussian draws of standard deviation ``sigma``; no clipping to [0,1], as in Cohen et al."""

    name = "smoothing"
    description = "randomized smoothing: median score over `samples` Gaussian draws (sigma); randomized"
    aggregate = "median"

    def __init__(self, *, sigma: float = 0.25, samples: int = 16, report_samples: int = 0) -> None:
        super().__init__(sigma=sigma, samples=samples, report_samples=report_samples)

    @property
    def certified_sigma(self) -> float:
        """The noise the median's percentile bounds are certified for: plain N(0, sigma^2) added, nothing else."""
        return self.sigma


@hookimpl
def register_defenses(register):
    for defense in (JPEG, BitDepth, Median, Blur, GaussianNoise, Smoothing):
        register(defense)
