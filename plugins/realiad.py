"""Real-IAD (Wang et al., CVPR 2024), read in place through the release's per-category JSON split files.

``--data-root`` is one image folder of the release (``realiad_256``, ``realiad_512``, ``realiad_1024`` or
``realiad_raw``), holding ``<category>/OK/...`` and ``<category>/NG/<defect>/...`` with ``*_mask.png`` masks.
The split files of ``realiad_jsons.zip`` lie beside it: ``ROOT/../realiad_jsons/<category>.json`` (or nested one
level deeper, ``ROOT/../realiad_jsons/realiad_jsons/``). Each file is ``{"meta": {"prefix", "normal_class"},
"train": [...], "test": [...]}``, every entry ``{"category", "anomaly_class", "image_path", "mask_path"}`` with
paths relative to ``ROOT/<prefix>``. As the release's own loader does, a test image is normal when its
``anomaly_class`` is the normal class or it has no mask (null or empty). The camera view (C1..C5) is read from the
file name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit.images import check_mask_matches
from robustad.kit.layouts import require_categories, require_category, require_root, sorted_by_path
from robustad.records import CategoryData, Sample

VIEWS = ("C1", "C2", "C3", "C4", "C5")
_VIEW_IN_NAME = re.compile(r"_(C[1-5])_")
_ENTRY_KEYS = ("anomaly_class", "image_path", "mask_path")


class RealIAD:
    """Real-IAD at one resolution; ``views`` keeps one camera view, ``jsons`` picks the split-file set."""

    name = "realiad"
    description = ("Real-IAD (30 objects, 5 views): --data-root = realiad_256/512/1024/raw beside realiad_jsons/; "
                   "licence CC BY-NC-SA 4.0")

    def __init__(self, *, views: str = "all", jsons: str = "realiad_jsons") -> None:
        if views != "all" and views.upper() not in VIEWS:
            raise RobustadError(f"realiad views {views!r}: expected all or one of {', '.join(VIEWS)}")
        if not jsons or Path(jsons).name != jsons:
            raise RobustadError(f"realiad jsons {jsons!r}: expected the name of a split-file folder, "
                                f"e.g. realiad_jsons or realiad_jsons_sv")
        self.views = views if views == "all" else views.upper()
        self.jsons = jsons

    def categories(self, root: Path | None) -> list[str]:
        """Categories with a split file and an image folder under ``root``."""
        root = require_root(self.name, root)
        return require_categories(self.name, root, self._present(root),
                                  f"folders like audiojack/OK/ listed in {self._json_folder(root)}")

    def load(self, root: Path | None, category: str) -> CategoryData:
        """The category's normal training images and labelled test images, of the chosen view(s)."""
        root = require_root(self.name, root)
        require_category(self.name, root, category, self._present(root))
        path = self._json_folder(root) / f"{category}.json"
        prefix, normal_class, splits = _read_split_file(path)
        found: dict[str, list[Sample]] = {"train": [], "test": []}
        for split, entries in splits.items():
            for index, entry in enumerate(entries):
                where = f"{path} {split}[{index}]"
                _check_entry(where, entry)
                image = root / prefix / str(entry["image_path"])
                if self.views == "all" or _view_of(image, where) == self.views:
                    found[split].append(_sample(image, root / prefix, where, entry, normal_class, split == "train"))
        for split, samples in found.items():
            if not samples:
                raise RobustadError(f"no {split} images for realiad category {category!r} (views={self.views}) "
                                    f"in {path}")
        return CategoryData(self.name, category, sorted_by_path(found["train"]), sorted_by_path(found["test"]))

    def _present(self, root: Path) -> list[str]:
        folder = self._json_folder(root)
        return sorted(p.stem for p in folder.glob("*.json") if not p.name.startswith(".") and (root / p.stem).is_dir())

    def _json_folder(self, root: Path) -> Path:
        """``ROOT/../<jsons>`` or, when the zip was unpacked into its own folder, ``ROOT/../realiad_jsons/<jsons>``."""
        candidates = (root.parent / self.jsons, root.parent / "realiad_jsons" / self.jsons)
        for folder in candidates:
            if folder.is_dir() and any(folder.glob("*.json")):
                return folder
        raise RobustadError(f"realiad split files not found: expected {candidates[0]}/<category>.json (or "
                            f"{candidates[1]}/) beside the image folder {root}, from the release's realiad_jsons.zip")


def _read_split_file(path: Path) -> tuple[str, str, dict[str, list]]:
    """``(prefix, normal class, {"train": entries, "test": entries})`` of one split file, its shape checked."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RobustadError(f"cannot read realiad split file {path}: {' '.join(str(exc).split())}") from None
    meta = document.get("meta") if isinstance(document, dict) else None
    if not isinstance(meta, dict) or not all(isinstance(document.get(k), list) for k in ("train", "test")):
        raise RobustadError(f"realiad split file {path}: expected an object with meta, train and test lists")
    if not isinstance(meta.get("prefix"), str) or not isinstance(meta.get("normal_class"), str):
        raise RobustadError(f"realiad split file {path}: meta needs string prefix and normal_class")
    return meta["prefix"], meta["normal_class"], {"train": document["train"], "test": document["test"]}


def _check_entry(where: str, entry: object) -> None:
    if not isinstance(entry, dict) or any(key not in entry for key in _ENTRY_KEYS):
        raise RobustadError(f"{where}: expected an object with {', '.join(_ENTRY_KEYS)}")


def _sample(image: Path, folder: Path, where: str, entry: dict, normal_class: str, training: bool) -> Sample:
    """One split-file entry as a Sample; the image must exist, a defect's mask must match its size."""
    if not image.is_file():
        raise RobustadError(f"{where}: image {image} does not exist")
    anomalous = entry["anomaly_class"] != normal_class and entry["mask_path"] not in (None, "")
    if training:
        if entry["anomaly_class"] != normal_class:
            raise RobustadError(f"{where}: anomaly_class {entry['anomaly_class']!r} in the train split; the "
                                f"reference set takes {normal_class} images only")
        return Sample(image, 0)
    if not anomalous:
        return Sample(image, 0)
    mask = folder / str(entry["mask_path"])
    check_mask_matches(image, mask)
    return Sample(image, 1, mask, str(entry["anomaly_class"]))


def _view_of(image: Path, where: str) -> str:
    """The camera view named in the file name (``..._C3_...``)."""
    match = _VIEW_IN_NAME.search(image.name)
    if match is None:
        raise RobustadError(f"{where}: cannot tell the camera view of {image.name}: expected _C1_ .. _C5_ in it")
    return match.group(1)


@hookimpl
def register_datasets(register):
    register(RealIAD)
