"""MVTec LOCO AD (Bergmann et al., IJCV 2022), read in place, with logical and structural anomalies.

Layout: ``ROOT/<category>/{train/good, validation/good, test/{good,logical_anomalies,structural_anomalies},
ground_truth/<type>/<image id>/000.png, 001.png, ...}``. An image may have several masks (one per defect region);
the sample's mask is their folder and the pixel ground truth their union. Mask values encode each defect's
saturation threshold; robustad counts every nonzero pixel as defect.
"""

from __future__ import annotations

from pathlib import Path

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit.layouts import FolderLayout, Release, ReleaseDataset

LOCO_CATEGORIES = ("breakfast_box", "juice_bottle", "pushpins", "screw_bag", "splicing_connectors")
ANOMALY_SUBSETS = {
    "both": ("logical_anomalies", "structural_anomalies"),
    "logical": ("logical_anomalies",),
    "structural": ("structural_anomalies",),
}


def mask_folder(mask_type_folder: Path, image: Path) -> Path:
    """``ground_truth/<type>/<image id>/``: the folder of one image's masks."""
    return mask_type_folder / image.stem


class MVTecLOCO(ReleaseDataset):
    """MVTec LOCO AD as released; ``anomalies`` picks the anomaly types in the test split (good images stay)."""

    name = "mvtec_loco"
    description = ("MVTec LOCO AD (5 categories; logical and/or structural anomalies) under --data-root; "
                   "licence CC BY-NC-SA 4.0")
    release = Release("mvtec_loco", LOCO_CATEGORIES, FolderLayout(mask_of=mask_folder))

    def __init__(self, *, anomalies: str = "both") -> None:
        if anomalies not in ANOMALY_SUBSETS:
            raise RobustadError(f"mvtec_loco anomalies {anomalies!r}: expected one of {', '.join(ANOMALY_SUBSETS)}")
        self.anomalies = anomalies
        self.defects = ANOMALY_SUBSETS[anomalies]


@hookimpl
def register_datasets(register):
    register(MVTecLOCO)
