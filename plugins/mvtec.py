"""Datasets in the MVTec AD layout: ``mvtec`` (the 15 official categories) and ``folder`` (any such tree)."""

from __future__ import annotations

from pathlib import Path

from robustad.hookspecs import hookimpl
from robustad.kit.layouts import (
    Release,
    ReleaseDataset,
    mvtec_categories,
    read_mvtec_layout,
    require_categories,
    require_category,
    require_root,
)
from robustad.records import CategoryData

MVTEC_CATEGORIES = ("bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut",
                    "pill", "screw", "tile", "toothbrush", "transistor", "wood", "zipper")
_LAYOUT = "ROOT/<category>/{train/good, test/<type>, ground_truth/<type>/<name>_mask.png}"


class MVTecAD(ReleaseDataset):
    """MVTec AD as released (Bergmann et al., CVPR 2019), read in place; other sub-folders are ignored."""

    name = "mvtec"
    description = "MVTec AD (15 categories), official layout under --data-root; licence CC BY-NC-SA 4.0"
    release = Release("mvtec", MVTEC_CATEGORIES)


class Folder:
    """A user's own images in the MVTec AD layout; every sub-folder with a train/good folder is a category."""

    name = "folder"
    description = "any tree in the MVTec AD layout under --data-root (categories = its sub-folders; your own data)"

    def categories(self, root: Path | None) -> list[str]:
        """Every sub-folder of ``root`` that holds a train/good folder."""
        root = require_root(self.name, root)
        return require_categories(self.name, root, mvtec_categories(root), f"sub-folders laid out as {_LAYOUT}")

    def load(self, root: Path | None, category: str) -> CategoryData:
        """The training normals and the labelled test split of one sub-folder."""
        root = require_root(self.name, root)
        require_category(self.name, root, category, mvtec_categories(root))
        return read_mvtec_layout(self.name, root, category)


@hookimpl
def register_datasets(register):
    register(MVTecAD)
    register(Folder)
