"""VisA (Zou et al., ECCV 2022) read in place from the release: images, masks and ``split_csv/1cls.csv``."""

from __future__ import annotations

import csv
from pathlib import Path

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit.images import check_mask_matches
from robustad.kit.layouts import require_categories, require_category, require_root, sorted_by_path
from robustad.records import CategoryData, Sample

VISA_CATEGORIES = ("candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2",
                   "pcb1", "pcb2", "pcb3", "pcb4", "pipe_fryum")
SPLIT_CSV = Path("split_csv") / "1cls.csv"
COLUMNS = ("object", "split", "label", "image", "mask")
LABELS = {"normal": 0, "anomaly": 1}


class VisA:
    """VisA as downloaded: ``ROOT/<category>/Data/{Images,Masks}`` split by ``ROOT/split_csv/1cls.csv``."""

    name = "visa"
    description = "VisA (12 categories) as downloaded, split by ROOT/split_csv/1cls.csv"

    def categories(self, root: Path | None) -> list[str]:
        """The official categories listed in 1cls.csv whose folder is present under ``root``."""
        root = require_root(self.name, root)
        return require_categories(self.name, root, _present(root, _read_rows(root)),
                                  f"folders like candle/Data/Images listed in {SPLIT_CSV}")

    def load(self, root: Path | None, category: str) -> CategoryData:
        """The 1cls training normals and labelled test split of one category; anomalies need a mask."""
        root = require_root(self.name, root)
        rows = _read_rows(root)
        require_category(self.name, root, category, _present(root, rows), known=VISA_CATEGORIES)
        train, test = [], []
        for line, row in rows:
            if row["object"] == category:
                split = train if row["split"] == "train" else test
                split.append(_sample(root, line, row))
        for split_name, samples in (("train", train), ("test", test)):
            if not samples:
                raise RobustadError(f"no {split_name} images for visa category {category!r} in {root / SPLIT_CSV}")
        return CategoryData(self.name, category, sorted_by_path(train), sorted_by_path(test))


def _read_rows(root: Path) -> list[tuple[int, dict[str, str]]]:
    """``(line number, row)`` for every row of 1cls.csv, values stripped; the header must name ``COLUMNS``."""
    path = root / SPLIT_CSV
    if not path.is_file():
        raise RobustadError(f"visa split file {path} is missing: expected the release's {SPLIT_CSV}")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise RobustadError(f"visa split file {path} lacks columns {', '.join(missing)}; "
                                f"expected {', '.join(COLUMNS)}")
        return [(reader.line_num, {c: (row[c] or "").strip() for c in COLUMNS}) for row in reader]


def _present(root: Path, rows: list[tuple[int, dict[str, str]]]) -> list[str]:
    listed = {row["object"] for _, row in rows}
    return sorted(c for c in VISA_CATEGORIES if c in listed and (root / c).is_dir())


def _sample(root: Path, line: int, row: dict[str, str]) -> Sample:
    """One row as a Sample, checking split, label, that the image exists and that an anomaly has its mask."""
    where = f"{root / SPLIT_CSV} line {line}"
    if row["split"] not in ("train", "test"):
        raise RobustadError(f"{where}: split {row['split']!r} is not train or test")
    if row["label"] not in LABELS:
        raise RobustadError(f"{where}: label {row['label']!r} is not normal or anomaly")
    label = LABELS[row["label"]]
    if label and row["split"] == "train":
        raise RobustadError(f"{where}: an anomaly in the train split (1cls trains on normal images only)")
    image = root / row["image"]
    if not image.is_file():
        raise RobustadError(f"{where}: image {image} does not exist")
    if not label:
        return Sample(image, 0)
    if not row["mask"]:
        raise RobustadError(f"{where}: defect image {image} has no mask")
    mask = root / row["mask"]
    check_mask_matches(image, mask)
    return Sample(image, 1, mask, "anomaly")


@hookimpl
def register_datasets(register):
    register(VisA)
