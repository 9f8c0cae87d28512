"""VisA (Zou et al., ECCV 2022) read in place from the release: images, masks and ``split_csv/1cls.csv``.

Every object that 1cls.csv lists and whose folder exists is a category: the 12 released ones, or a user's own
data in the VisA format.
"""

from __future__ import annotations

import csv
from pathlib import Path

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit.images import check_mask_matches
from robustad.kit.layouts import require_categories, require_category, require_root, sorted_by_path
from robustad.records import CategoryData, Sample

SPLIT_CSV = Path("split_csv") / "1cls.csv"
COLUMNS = ("object", "split", "label", "image", "mask")
LABELS = {"normal": 0, "anomaly": 1}


class VisA:
    """VisA as downloaded: ``ROOT/<category>/Data/{Images,Masks}`` split by ``ROOT/split_csv/1cls.csv``."""

    name = "visa"
    description = ("VisA as downloaded (12 objects, or any object listed in ROOT/split_csv/1cls.csv); "
                   "licence CC BY 4.0")

    def categories(self, root: Path | None) -> list[str]:
        """The objects listed in 1cls.csv whose folder is present under ``root``."""
        root = require_root(self.name, root)
        return require_categories(self.name, root, _present(root, _read_rows(root)),
                                  f"folders like candle/Data/Images listed in {SPLIT_CSV}")

    def load(self, root: Path | None, category: str) -> CategoryData:
        """The 1cls training normals and labelled test split of one category; anomalies need a mask."""
        root = require_root(self.name, root)
        rows = _read_rows(root)
        require_category(self.name, root, category, _present(root, rows), known=_listed(rows))
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


def _listed(rows: list[tuple[int, dict[str, str]]]) -> set[str]:
    """The object names of the rows that can name a folder under the root (no path separators, not . or ..)."""
    return {row["object"] for _, row in rows if row["object"] not in ("", ".", "..") and "/" not in row["object"]
            and "\\" not in row["object"]}


def _present(root: Path, rows: list[tuple[int, dict[str, str]]]) -> list[str]:
    return sorted(c for c in _listed(rows) if (root / c).is_dir())


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
