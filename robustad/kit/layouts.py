"""Dataset layouts on disk, shared by the dataset plugins: root and category checks, and the MVTec AD reader.

The MVTec AD layout is ``ROOT/<category>/{train/good, test/<type>, ground_truth/<type>/<name>_mask.png}``;
``test/good`` holds the normal test images, every other ``test/<type>`` the defects of that type.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from robustad.errors import RobustadError
from robustad.kit.images import check_mask_matches, is_image_file
from robustad.records import CategoryData, Sample

NORMAL = "good"


def require_root(dataset: str, root: Path | None) -> Path:
    """``root`` as a Path, or a one-line error when it is not given or not a directory."""
    if root is None:
        raise RobustadError(f"dataset {dataset!r} needs a root folder (--data-root)")
    root = Path(root)
    if not root.is_dir():
        raise RobustadError(f"{dataset} root {root} does not exist or is not a folder")
    return root


def require_categories(dataset: str, root: Path, found: Iterable[str], expected: str) -> list[str]:
    """The sorted categories ``found``, or an error saying what a category folder should look like."""
    names = sorted(found)
    if not names:
        raise RobustadError(f"no {dataset} categories under {root}: expected {expected}")
    return names


def require_category(dataset: str, root: Path, category: str, present: list[str],
                     known: Iterable[str] | None = None) -> None:
    """Raise unless ``category`` is present, listing the categories that are."""
    if category in present:
        return
    found = ", ".join(present) or "none"
    if known is not None and category not in known:
        raise RobustadError(f"unknown {dataset} category {category!r}; found under {root}: {found}")
    raise RobustadError(f"{dataset} category {category!r} not found under {root}; found: {found}")


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    return sorted((p for p in folder.iterdir() if is_image_file(p)), key=lambda p: p.name)


def sorted_by_path(samples: Iterable[Sample]) -> list[Sample]:
    """Samples in path order, compared as POSIX strings so every platform sorts alike."""
    return sorted(samples, key=lambda s: s.path.as_posix())


def mvtec_categories(root: Path) -> list[str]:
    """Sub-folders of ``root`` that hold a ``train/good`` folder."""
    return sorted(p.name for p in root.iterdir() if (p / "train" / NORMAL).is_dir())


def read_mvtec_layout(dataset: str, root: Path, category: str) -> CategoryData:
    """Read one category of an MVTec-layout tree, checking that every defect image has a mask of its size."""
    folder = root / category
    train_folder = folder / "train" / NORMAL
    if not train_folder.is_dir():
        raise RobustadError(f"{dataset} category folder {folder} has no train/good folder")
    train = [Sample(path, 0) for path in image_files(train_folder)]
    if not train:
        raise RobustadError(f"no images in {train_folder}")
    test_folder = folder / "test"
    if not test_folder.is_dir():
        raise RobustadError(f"{dataset} category folder {folder} has no test folder")
    test = []
    for type_folder in sorted(p for p in test_folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        defect = type_folder.name
        for path in image_files(type_folder):
            if defect == NORMAL:
                test.append(Sample(path, 0))
                continue
            mask = _mask_of(folder / "ground_truth" / defect, path)
            check_mask_matches(path, mask)
            test.append(Sample(path, 1, mask, defect))
    if not test:
        raise RobustadError(f"no images in the test folders under {test_folder}")
    return CategoryData(dataset, category, sorted_by_path(train), sorted_by_path(test))


def _mask_of(mask_folder: Path, image: Path) -> Path:
    """``<name>_mask.png`` (the official name), else a ``<name>_mask`` file in another image format."""
    official = mask_folder / f"{image.stem}_mask.png"
    if official.is_file() or not mask_folder.is_dir():
        return official
    others = sorted(p for p in mask_folder.iterdir() if p.stem == f"{image.stem}_mask" and is_image_file(p))
    return others[0] if others else official
