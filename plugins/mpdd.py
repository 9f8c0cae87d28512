"""MPDD, the Metal Parts Defect Detection dataset (Jezek et al., ICUMT 2021), read in place.

The release uses the MVTec AD layout: ``ROOT/<category>/{train/good, test/<type>,
ground_truth/<type>/<name>_mask.png}``.
"""

from __future__ import annotations

from pathlib import Path

from robustad.hookspecs import hookimpl
from robustad.kit.layouts import Release
from robustad.records import CategoryData

MPDD_CATEGORIES = ("bracket_black", "bracket_brown", "bracket_white", "connector", "metal_plate", "tubes")
_RELEASE = Release("mpdd", MPDD_CATEGORIES)


class MPDD:
    """MPDD as released: six categories of metal parts in the MVTec AD layout."""

    name = "mpdd"
    description = "MPDD metal parts (6 categories), MVTec AD layout under --data-root; licence CC BY-NC-SA 4.0"

    def categories(self, root: Path | None) -> list[str]:
        """The six MPDD categories present under ``root``."""
        return _RELEASE.categories(root)

    def load(self, root: Path | None, category: str) -> CategoryData:
        """The training normals and the labelled test split of one category."""
        return _RELEASE.load(root, category)


@hookimpl
def register_datasets(register):
    register(MPDD)
