"""Reading images and defect masks, with one-line errors that name the file instead of a PIL traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from robustad.errors import RobustadError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_PIL_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
_INDEX_MODES = ("1", "L", "P", "I", "I;16", "F")  # one value per pixel: nonzero = defect
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # grey levels wider than 8 bits


def is_image_file(path: Path) -> bool:
    """A visible file whose suffix is an image format PIL reads."""
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


def load_rgb(path: Path) -> Image.Image:
    """The image at ``path`` as 8-bit RGB, fully decoded now so a truncated file fails here, naming the file.

    High-bit-depth images are scaled to 8 bits (16-bit: value / 257, as 65535 -> 255) instead of PIL's clipping,
    which turns a 16-bit image white; float-valued images have no defined range and are refused.
    """
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in _WIDE_MODES:
                return Image.fromarray(_to_8bit(np.asarray(image), path)).convert("RGB")
            if image.mode == "F":
                raise RobustadError(f"cannot read image {path}: float-valued pixels (mode F) have no defined range; "
                                    "expected an 8- or 16-bit image")
            return image.convert("RGB")
    except _PIL_ERRORS as exc:
        raise RobustadError(f"cannot read image {path}: {_reason(exc)}") from None


def _to_8bit(values: np.ndarray, path: Path) -> np.ndarray:
    """16-bit (or 32-bit integer holding 16-bit) grey levels as 8-bit ones."""
    values = values.astype(np.int64)
    if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
        raise RobustadError(f"cannot read image {path}: integer pixels outside 0..65535; expected an 8- or 16-bit image")
    return np.round(values / 257).astype(np.uint8)


def load_mask(path: Path) -> np.ndarray:
    """The defect mask at ``path`` as a bool array ``(H, W)``: any nonzero value (or palette index) is defect."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in _INDEX_MODES:
                image = image.convert("RGB")  # drops an alpha channel, which says nothing about defects
            values = np.asarray(image)
    except _PIL_ERRORS as exc:
        raise RobustadError(f"cannot read mask {path}: {_reason(exc)}") from None
    return values.any(axis=-1) if values.ndim == 3 else values != 0


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` read from the file header only (cheap: used to check masks at load time)."""
    try:
        with Image.open(path) as image:
            return image.size
    except _PIL_ERRORS as exc:
        raise RobustadError(f"cannot read image {path}: {_reason(exc)}") from None


def check_mask_matches(image: Path, mask: Path) -> None:
    """Raise unless ``mask`` exists and has the same size as ``image`` (headers only)."""
    if not mask.is_file():
        raise RobustadError(f"defect image {image} has no mask: expected {mask}")
    image_wh, mask_wh = image_size(image), image_size(mask)
    if image_wh != mask_wh:
        raise RobustadError(f"mask {mask} is {mask_wh[0]}x{mask_wh[1]} but its image {image} "
                            f"is {image_wh[0]}x{image_wh[1]}")


def _reason(exc: BaseException) -> str:
    """PIL's failure in words: the common cases named plainly, the rest as PIL says them."""
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image format PIL can read"
    return " ".join(str(exc).split()) or type(exc).__name__
