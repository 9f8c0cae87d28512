"""BTAD, the beanTech Anomaly Detection dataset (Mishra et al., ICIP 2021), read in place.

Layout: ``ROOT/<01|02|03>/{train/ok, test/ok, test/ko, ground_truth/ko}``. Image and mask formats differ between
products (e.g. BMP images with PNG masks), so a mask is the file in ``ground_truth/ko`` with its image's stem.
"""

from __future__ import annotations

from pathlib import Path

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit.images import image_files
from robustad.kit.layouts import FolderLayout, Release, ReleaseDataset

BTAD_CATEGORIES = ("01", "02", "03")


def same_stem_mask(mask_folder: Path, image: Path) -> Path:
    """The one image file in ``mask_folder`` whose stem is the image's (any image format)."""
    found = [p for p in image_files(mask_folder) if p.stem == image.stem] if mask_folder.is_dir() else []
    if not found:
        raise RobustadError(f"defect image {image} has no mask: expected {mask_folder / image.stem}.<png|bmp|...> "
                            f"(masks are matched by file stem)")
    if len(found) > 1:
        raise RobustadError(f"defect image {image} has {len(found)} masks: {', '.join(p.name for p in found)} "
                            f"in {mask_folder}; expected one")
    return found[0]


class BTAD(ReleaseDataset):
    """BTAD as released: three industrial products, normal images in ``ok``, defective ones in ``ko``."""

    name = "btad"
    description = "BTAD (products 01, 02, 03), release layout under --data-root; licence CC BY-NC-SA 4.0"
    release = Release("btad", BTAD_CATEGORIES, FolderLayout(train="train/ok", normal="ok", mask_of=same_stem_mask))


@hookimpl
def register_datasets(register):
    register(BTAD)
