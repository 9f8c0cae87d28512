"""Natural corruptions under ``--norm corruption`` (docs/protocol.md section 4): the ImageNet-C corruptions
(Hendrycks & Dietterich 2019) that an industrial camera meets, at their published severities 1-5; severity 0 is the
clean image. ``corruption:<name>`` picks one; the cell's eps is the severity.

Each works on the [0,1] resized image (H, W, 3) in float64 with a numpy generator seeded per image (from the cell
seed, the attack spec and the image's name: every severity of one corruption draws the same numbers), and returns
[0,1] pixels. The formulas and constants follow the paper's reference code and the ``imagecorruptions`` package
(bethgelab); that package is not used because it needs ``opencv-python`` beside our ``opencv-python-headless``,
draws from numpy's global generator, and its 1.1.2 release fails on scikit-image >= 0.19 and numpy 2.

Left out: the weather corruptions (snow, frost, fog: outdoor scenes; frost needs the paper's photographs), spatter
and saturate (the paper's held-out extras, not among its 15) and glass blur (a per-pixel Python loop of seconds per
image for what defocus and gaussian blur already cover).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit.threat import CORRUPTION, check_severity

if TYPE_CHECKING:
    import torch

    from robustad.contracts import AttackTarget

Corrupt = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


def gaussian_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Additive sensor noise: x + N(0, c^2) per pixel and channel."""
    c = (0.08, 0.12, 0.18, 0.26, 0.38)[severity - 1]
    return image + c * rng.standard_normal(image.shape)


def shot_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Photon noise: Poisson(c x) / c (fewer photons, c, at higher severity)."""
    c = (60, 25, 12, 5, 3)[severity - 1]
    return rng.poisson(image * c) / c


def impulse_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper: a share c of the pixel values set to 0 or 1 with equal odds (each channel on its own)."""
    c = (0.03, 0.06, 0.09, 0.17, 0.27)[severity - 1]
    hit, salt = rng.random(image.shape) < c, rng.random(image.shape) < 0.5
    return np.where(hit, salt.astype(image.dtype), image)


def speckle_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative noise: x + x N(0, c^2)."""
    c = (0.15, 0.2, 0.35, 0.45, 0.6)[severity - 1]
    return image + image * c * rng.standard_normal(image.shape)


def gaussian_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A Gaussian of standard deviation c pixels (scikit-image's ``gaussian``: nearest border, truncated at 4c)."""
    from scipy.ndimage import gaussian_filter

    c = (1, 2, 3, 4, 6)[severity - 1]
    return gaussian_filter(image, sigma=(c, c, 0), mode="nearest", truncate=4.0)


def defocus_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """An out-of-focus lens: convolution with a disk of radius r, anti-aliased by a Gaussian of sigma a."""
    from scipy.ndimage import correlate

    radius, alias = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))[severity - 1]
    kernel = disk_kernel(radius, alias)
    return correlate(image, kernel[:, :, None], mode="mirror")


def disk_kernel(radius: int, alias: float) -> np.ndarray:
    """The disk of ``radius`` on a grid of half-width max(8, radius), normalised, then blurred by a Gaussian of
    sigma ``alias`` (3x3 up to radius 8, 5x5 beyond, reflect-101 border), as the paper's kernel."""
    from scipy.ndimage import correlate

    half = max(8, radius)
    y, x = np.mgrid[-half:half + 1, -half:half + 1]
    aliased = ((x ** 2 + y ** 2) <= radius ** 2).astype(np.float64)
    aliased /= aliased.sum()
    size = 3 if radius <= 8 else 5
    offsets = np.arange(size) - size // 2
    taps = np.exp(-offsets ** 2 / (2 * alias ** 2))
    taps /= taps.sum()
    return correlate(aliased, np.outer(taps, taps), mode="mirror")


def motion_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Camera shake along a random angle in [-45, 45] degrees: the mean of the image shifted by 0..2r pixels along
    that line, weighted by a one-sided Gaussian of sigma s in the shift, edges repeated."""
    radius, sigma = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))[severity - 1]
    angle = np.deg2rad(rng.uniform(-45, 45))
    height, width = image.shape[:2]
    shifts = np.arange(2 * radius + 1)
    weights = np.exp(-shifts ** 2 / (2 * sigma ** 2))
    weights /= weights.sum()
    rows, columns = np.arange(height), np.arange(width)
    blurred = np.zeros_like(image)
    for shift, weight in zip(shifts, weights):
        dy, dx = int(np.rint(shift * np.sin(angle))), int(np.rint(shift * np.cos(angle)))
        source = image[np.clip(rows + dy, 0, height - 1)][:, np.clip(columns + dx, 0, width - 1)]
        blurred += weight * source
    return blurred


def zoom_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Moving towards the part while exposing: the mean of the image and its central crops zoomed back by factors
    1, 1 + d, ... up to z (linear interpolation)."""
    step, top = ((0.01, 1.11), (0.01, 1.16), (0.02, 1.21), (0.02, 1.26), (0.03, 1.31))[severity - 1]
    factors = np.arange(1, top, step)
    total = image.copy()
    for factor in factors:
        total += central_zoom(image, float(factor))
    return total / (len(factors) + 1)


def central_zoom(image: np.ndarray, factor: float) -> np.ndarray:
    """The central ceil(size / factor) crop zoomed by ``factor`` (scipy's linear spline), cut to the image size."""
    from scipy.ndimage import zoom

    height, width = image.shape[:2]
    crop_h, crop_w = int(np.ceil(height / factor)), int(np.ceil(width / factor))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    zoomed = zoom(image[top:top + crop_h, left:left + crop_w], (factor, factor, 1), order=1)
    return zoomed[:height, :width]


def brightness(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """More light: the HSV value V = max(r, g, b) raised by c (clipped to 1), hue and saturation kept. With H and S
    fixed each channel is proportional to V, so the pixel is scaled by V' / V (a black pixel becomes grey V')."""
    c = (0.1, 0.2, 0.3, 0.4, 0.5)[severity - 1]
    value = image.max(axis=-1, keepdims=True)
    raised = np.minimum(value + c, 1)
    return np.where(value > 0, image * raised / np.where(value > 0, value, 1), raised)


def contrast(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Less contrast: each channel pulled towards its mean, (x - mean) c + mean."""
    c = (0.4, 0.3, 0.2, 0.1, 0.05)[severity - 1]
    means = image.mean(axis=(0, 1), keepdims=True)
    return (image - means) * c + means


def jpeg_compression(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """The 8-bit image saved as JPEG at quality q by Pillow (its default 4:2:0 chroma subsampling) and decoded."""
    from PIL import Image

    quality = (25, 18, 15, 10, 7)[severity - 1]
    buffer = io.BytesIO()
    Image.fromarray(to_8bit(image)).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float64) / 255


def pixelate(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A coarse sensor: the 8-bit image box-downsampled to c times its size and enlarged back by nearest neighbour
    (Pillow)."""
    from PIL import Image

    c = (0.6, 0.5, 0.4, 0.3, 0.25)[severity - 1]
    height, width = image.shape[:2]
    small = Image.fromarray(to_8bit(image)).resize((int(width * c), int(height * c)), Image.Resampling.BOX)
    return np.asarray(small.resize((width, height), Image.Resampling.NEAREST), dtype=np.float64) / 255


def elastic_transform(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A local warp: displacements uniform in +-0.005 H per pixel, smoothed by a Gaussian of 0.01 of the image
    size (reflect border, truncated at 3 sigma) and scaled by alpha; the image resampled there bilinearly with
    reflected borders (``imagecorruptions``' size-relative form)."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    alpha = 250 * (0.05, 0.065, 0.085, 0.1, 0.12)[severity - 1]
    height, width = image.shape[:2]
    reach, sigma = 0.005 * height, 0.01 * np.array([height, width])
    dx, dy = (alpha * gaussian_filter(rng.uniform(-reach, reach, (height, width)), sigma, mode="reflect",
                                      truncate=3) for _ in range(2))
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = [map_coordinates(image[..., c], (rows + dy, columns + dx), order=1, mode="reflect")
                for c in range(image.shape[2])]
    return np.stack(channels, axis=-1)


def to_8bit(image: np.ndarray) -> np.ndarray:
    """[0,1] pixels as uint8 (rounded), what Pillow encodes."""
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


CORRUPTIONS: dict[str, Corrupt] = {function.__name__: function for function in (
    gaussian_noise, shot_noise, impulse_noise, speckle_noise,
    defocus_blur, motion_blur, zoom_blur, gaussian_blur,
    brightness, contrast, jpeg_compression, pixelate, elastic_transform,
)}
"""The corruptions by name, in the paper's order (noise, blur, digital)."""


def corrupt(image: np.ndarray, name: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """``image`` (H, W, 3) in [0,1] under corruption ``name`` at ``severity``, clipped to [0,1]; severity 0 returns
    the image itself."""
    if severity == 0:
        return image
    return np.clip(CORRUPTIONS[name](image, severity, rng), 0, 1)


class Corruption:
    """One ImageNet-C corruption at the cell's severity (eps, under ``--norm corruption``): no model, no surrogate,
    one numpy generator per image."""

    name = "corruption"
    primary_option = "corruption"  # what corruption:VALUE sets
    description = "ImageNet-C corruption at severity eps (0-5) under --norm corruption, e.g. corruption:motion_blur"
    needs_surrogate = False
    norms = (CORRUPTION,)
    control = True  # nature does not choose: the engine gives a corruption no clean candidate (keep_clean)

    def __init__(self, *, corruption: str = "gaussian_noise") -> None:
        if corruption not in CORRUPTIONS:
            raise RobustadError(f"corruption option corruption={corruption!r}: expected one of "
                                f"{', '.join(CORRUPTIONS)}")
        self.corruption = corruption

    def perturb(self, target: AttackTarget) -> torch.Tensor:
        import torch

        if target.norm != CORRUPTION:
            raise RobustadError(f"corruption: norm {target.norm!r}; expected {CORRUPTION} (eps is the severity)")
        severity = int(check_severity(target.eps))
        images = target.images
        if images.ndim != 4 or images.shape[1] != 3 or len(target.seeds) != images.shape[0]:
            raise RobustadError(f"corruption: images of shape {tuple(images.shape)} with {len(target.seeds)} "
                                "seeds; expected (B, 3, H, W) and one seed per image")
        pixels = images.detach().permute(0, 2, 3, 1).double().cpu().numpy()
        corrupted = [corrupt(image, self.corruption, severity, np.random.default_rng(int(seed)))
                     for image, seed in zip(pixels, target.seeds)]
        stacked = torch.from_numpy(np.stack(corrupted)).permute(0, 3, 1, 2)
        return stacked.to(dtype=images.dtype, device=images.device).contiguous()

    def describe(self, eps: float) -> dict:
        return {"steps": 0, "corruption": self.corruption}


@hookimpl
def register_attacks(register):
    register(Corruption)
