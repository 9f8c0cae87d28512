"""A small generated dataset so that robustad runs offline with no download.

Two categories in the MVTec AD layout, drawn deterministically from fixed seeds on first use into the
user cache: ``weave`` (a woven texture with scratches and stains) and ``disc`` (a shaded machined disc
with burn spots and chipped edges). Normal images vary in position, lighting and sensor noise; every
defect is drawn with a hard edge, so its mask is exactly the pixels it changed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit.layouts import read_mvtec_layout, require_category
from robustad.records import CategoryData

VERSION = "demo-v1"  # bump when the images change, so old caches are not reused
SIZE = 128
SEED = 20240601
N_TRAIN = 30
N_TEST_GOOD = 15
YX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)  # (2, H, W): row and column of every pixel


class Demo:
    """The generated offline dataset: ``weave`` and ``disc``, 30 train / 15 good + 15 defective test each."""

    name = "demo"
    description = ("small generated dataset (weave, disc; 128x128) for offline runs, kept in the user cache; "
                   "made by robustad, no third-party licence")

    def categories(self, root: Path | None) -> list[str]:
        """Both categories: they are generated, so always present."""
        return sorted(CATEGORIES)

    def load(self, root: Path | None, category: str) -> CategoryData:
        """One category, generated first if needed; ``root``, if given, replaces the user cache folder."""
        base = Path(root) if root is not None else cache_dir()
        require_category(self.name, base, category, sorted(CATEGORIES))
        return read_mvtec_layout(self.name, ensure_generated(base), category)


def cache_dir() -> Path:
    """``$ROBUSTAD_CACHE``, else ``$XDG_CACHE_HOME/robustad``, else ``~/.cache/robustad``."""
    if os.environ.get("ROBUSTAD_CACHE"):
        return Path(os.environ["ROBUSTAD_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "robustad"


def ensure_generated(base: Path) -> Path:
    """``base/demo-v1``, generated into a temporary folder and renamed into place, so concurrent runs are safe."""
    final = base / VERSION
    if final.is_dir():
        return final
    try:
        base.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{VERSION}-", dir=base))
    except OSError as exc:
        raise RobustadError(f"cannot create the demo dataset under {base}: {exc.strerror or exc}") from None
    try:
        generate(staging)
        staging.rename(final)
    except OSError as exc:
        if not final.is_dir():  # another process may have won the race: then its copy is used
            raise RobustadError(f"cannot write the demo dataset to {final}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def generate(root: Path) -> None:
    """Write every category in the MVTec AD layout under ``root``."""
    for number, (category, (normal, defects)) in enumerate(sorted(CATEGORIES.items())):
        folder = root / category
        for index in range(N_TRAIN):
            _save(normal(_rng(number, 0, index))[0], folder / "train" / "good" / f"{index:03d}.png")
        for index in range(N_TEST_GOOD):
            _save(normal(_rng(number, 1, index))[0], folder / "test" / "good" / f"{index:03d}.png")
        for part, (defect, count) in enumerate(defects, start=2):
            for index in range(count):
                generator = _rng(number, part, index)
                image, region = normal(generator)
                mask = DEFECTS[defect](image, region, generator)
                _save(image, folder / "test" / defect / f"{index:03d}.png")
                _save(mask, folder / "ground_truth" / defect / f"{index:03d}_mask.png")


def _rng(category: int, part: int, index: int) -> np.random.Generator:
    """An independent stream per image, so each image is the same whatever else is generated."""
    return np.random.default_rng((SEED, category, part, index))


def _save(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.dtype == bool:
        Image.fromarray(array.astype(np.uint8) * 255, mode="L").save(path)
    else:
        Image.fromarray(np.round(np.clip(array, 0.0, 1.0) * 255).astype(np.uint8), mode="RGB").save(path)


# Normal images: float RGB (H, W, 3) in about [0, 1], and the bool (H, W) region of the object.

def _weave(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A plain weave: threads 8 px wide crossing over and under, shifted, lit and noised at random."""
    period = 8.0
    y, x = YX + rng.uniform(0, 2 * period, size=(2, 1, 1))
    cell = (np.floor(x / period) + np.floor(y / period)) % 2
    across = np.where(cell == 0, x, y) % period / period  # position across the thread on top
    shading = 0.55 + 0.45 * np.sin(np.pi * across)
    colour = np.array([0.78, 0.66, 0.46]) * rng.uniform(0.9, 1.1)
    return _finish(shading[..., None] * colour * _lighting(rng), rng), np.ones((SIZE, SIZE), bool)


def _disc(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A machined dome-shaped disc on a grey table, slightly off-centre, lit from a varying direction."""
    centre = SIZE / 2 + rng.uniform(-4, 4, size=2)
    radius = rng.uniform(38, 42)
    dy, dx = (YX - centre[:, None, None]) / radius
    r2 = dx ** 2 + dy ** 2
    inside = r2 < 1.0
    tilt = np.sqrt(0.6)  # a shallow dome: unit surface normals (-tilt*dy, -tilt*dx, nz)
    normal_z = np.sqrt(np.clip(1.0 - tilt ** 2 * r2, 0.0, 1.0))
    light = np.array([*rng.uniform(-0.3, 0.3, size=2), 1.0])
    light /= np.linalg.norm(light)
    lambert = np.clip(-tilt * dy * light[0] - tilt * dx * light[1] + normal_z * light[2], 0.0, 1.0)
    rings = 0.04 * np.cos(2 * np.pi * np.sqrt(r2) * radius / 3.0)  # turning marks every 3 px
    metal = (0.25 + 0.7 * lambert + rings)[..., None] * np.array([0.55, 0.62, 0.75])
    table = np.full((SIZE, SIZE, 3), 0.33) * rng.uniform(0.9, 1.1)
    return _finish(np.where(inside[..., None], metal, table), rng), inside


def _lighting(rng: np.random.Generator) -> np.ndarray:
    """A gentle linear light gradient (+-8 %) in a random direction, shape (H, W, 1)."""
    slope = rng.uniform(-0.08, 0.08, size=2) / SIZE
    return (1.0 + slope[0] * (YX[0] - SIZE / 2) + slope[1] * (YX[1] - SIZE / 2))[..., None]


def _finish(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return image + rng.normal(0.0, 0.02, size=image.shape)


# Defects: paint into the image (in place) on the object's region, with a random opacity so that some are
# faint; return the exact mask of the changed pixels.

def _scratch(image: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A dark straight scratch 2-4 px wide and 20-60 px long."""
    centre = rng.uniform(24, SIZE - 24, size=2)
    angle = rng.uniform(0, np.pi)
    half_length = rng.uniform(10, 30)
    direction = np.array([np.sin(angle), np.cos(angle)]) * half_length
    mask = region & _near_segment(centre - direction, centre + direction, half_width=rng.uniform(1.0, 2.0))
    return _paint(image, mask, np.full(3, 0.15), rng.uniform(0.4, 0.9), rng)


def _stain(image: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A reddish-brown stain soaked into the texture: an ellipse of 5-12 px half-axes."""
    centre = rng.uniform(28, SIZE - 28, size=2)
    mask = region & _ellipse(centre, rng.uniform(5, 12, size=2), rng.uniform(0, np.pi))
    return _paint(image, mask, image[mask] * np.array([0.75, 0.4, 0.3]), rng.uniform(0.4, 1.0), rng)


def _spot(image: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A dark burn spot (3-8 px half-axes) on the disc, away from its rim."""
    centre = np.argwhere(region).mean(axis=0) + rng.uniform(-18, 18, size=2)
    mask = region & _ellipse(centre, rng.uniform(3, 8, size=2), rng.uniform(0, np.pi))
    return _paint(image, mask, np.array([0.22, 0.16, 0.1]), rng.uniform(0.4, 0.9), rng)


def _chip(image: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A piece broken off the rim: the disc pixels in a circle of radius 6-12 px on the rim show the table."""
    radius = np.sqrt(region.sum() / np.pi)
    angle = rng.uniform(0, 2 * np.pi)
    bite = np.argwhere(region).mean(axis=0) + radius * np.array([np.sin(angle), np.cos(angle)])
    mask = region & _ellipse(bite, np.full(2, rng.uniform(6, 12)), 0.0)
    return _paint(image, mask, image[~region].mean(axis=0), 1.0, rng)


def _paint(image: np.ndarray, mask: np.ndarray, colour: np.ndarray, opacity: float,
           rng: np.random.Generator) -> np.ndarray:
    """Blend ``colour`` (plus sensor noise) over the ``mask`` pixels; return ``mask``."""
    paint = colour + rng.normal(0.0, 0.02, size=(int(mask.sum()), 3))
    image[mask] = (1.0 - opacity) * image[mask] + opacity * paint
    return mask


def _ellipse(centre: np.ndarray, half_axes: np.ndarray, angle: float) -> np.ndarray:
    dy, dx = YX - centre[:, None, None]
    u = dy * np.cos(angle) + dx * np.sin(angle)
    v = -dy * np.sin(angle) + dx * np.cos(angle)
    return (u / half_axes[0]) ** 2 + (v / half_axes[1]) ** 2 <= 1.0


def _near_segment(a: np.ndarray, b: np.ndarray, half_width: float) -> np.ndarray:
    points = YX.reshape(2, -1).T
    t = np.clip((points - a) @ (b - a) / np.dot(b - a, b - a), 0.0, 1.0)
    distance = np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=1)
    return (distance <= half_width).reshape(SIZE, SIZE)


Draw = Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]
DEFECTS = {"scratch": _scratch, "stain": _stain, "spot": _spot, "chip": _chip}
CATEGORIES: dict[str, tuple[Draw, tuple[tuple[str, int], ...]]] = {
    "weave": (_weave, (("scratch", 8), ("stain", 7))),
    "disc": (_disc, (("spot", 8), ("chip", 7))),
}


@hookimpl
def register_datasets(register):
    register(Demo)
