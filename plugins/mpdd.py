"""MPDD, the Metal Parts Defect Detection dataset (Jezek et al., ICUMT 2021), read in place.

The release uses the MVTec AD layout: ``ROOT/<category>/{train/good, test/<type>,
ground_truth/<type>/<name>_mask.png}``.
"""

from __future__ import annotations

from robustad.hookspecs import hookimpl
from robustad.kit.layouts import Release, ReleaseDataset

MPDD_CATEGORIES = ("bracket_black", "bracket_brown", "bracket_white", "connector", "metal_plate", "tubes")


class MPDD(ReleaseDataset):
    """MPDD as released: six categories of metal parts in the MVTec AD layout."""

    name = "mpdd"
    description = "MPDD metal parts (6 categories), MVTec AD layout under --data-root; licence CC BY-NC-SA 4.0"
    release = Release("mpdd", MPDD_CATEGORIES)


@hookimpl
def register_datasets(register):
    register(MPDD)
