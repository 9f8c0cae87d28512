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
        raise RobustadError(f"cannot read image {path}: integer pixels outside 0..65535; "
                            "expected an 8- or 16-bit image")
    return np.round(values / 257).astype(np.uint8)


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    return sorted((p for p in folder_entries(folder) if is_image_file(p)), key=lambda p: p.name)


def folder_entries(folder: Path) -> list[Path]:
    """What ``folder`` holds, or a one-line error naming it when it cannot be listed (no read permission)."""
    try:
        return list(Path(folder).iterdir())
    except OSError as exc:
        raise RobustadError(f"cannot list folder {folder}: {_reason(exc)}") from None


def load_mask(path: Path) -> np.ndarray:
    """The defect mask at ``path`` as a bool array ``(H, W)``: any nonzero value (or palette index) is defect.

    ``path`` may be a folder of masks (MVTec LOCO: one file per defect region): the result is their union.
    """
    if Path(path).is_dir():
        return _union_of_masks(Path(path))
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


def _mask_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of a mask after decoding every pixel, so that a file cut short fails now, naming it."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.size
    except _PIL_ERRORS as exc:
        raise RobustadError(f"cannot read mask {path}: {_reason(exc)}") from None


def check_mask_matches(image: Path, mask: Path) -> None:
    """Raise unless ``mask`` (a file, or a folder of masks) exists, decodes, and has the size of ``image`` (read
    from its header). Masks are decoded in full now (about 3 ms for a 900x900 PNG): a run reads only the eval
    images' masks, so a damaged mask of a calib image would otherwise pass unnoticed."""
    if not mask.exists():
        raise RobustadError(f"defect image {image} has no mask: expected {mask}")
    image_wh = image_size(image)
    for part in _mask_parts(mask):
        mask_wh = _mask_size(part)
        if image_wh != mask_wh:
            raise RobustadError(f"mask {part} is {mask_wh[0]}x{mask_wh[1]} but its image {image} "
                                f"is {image_wh[0]}x{image_wh[1]}")


def _mask_parts(mask: Path) -> list[Path]:
    """The mask files a mask path stands for: itself, or every image in a mask folder (at least one)."""
    if not mask.is_dir():
        return [mask]
    parts = image_files(mask)
    if not parts:
        raise RobustadError(f"mask folder {mask} holds no mask images")
    return parts


def _union_of_masks(folder: Path) -> np.ndarray:
    """The union of every mask in ``folder``; all must have one size."""
    parts = _mask_parts(folder)
    union = load_mask(parts[0])
    for part in parts[1:]:
        mask = load_mask(part)
        if mask.shape != union.shape:
            raise RobustadError(f"masks in {folder} differ in size: {parts[0].name} is {union.shape[1]}x"
                                f"{union.shape[0]}, {part.name} is {mask.shape[1]}x{mask.shape[0]}")
        union |= mask
    return union


def _reason(exc: BaseException) -> str:
    """PIL's (or the file system's) failure in words: the common cases named plainly, the rest as PIL says them."""
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image format PIL can read"
    return " ".join(str(exc).split()) or type(exc).__name__
