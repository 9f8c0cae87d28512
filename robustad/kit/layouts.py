"""Dataset layouts on disk, shared by the dataset plugins: root and category checks, and a folder-layout reader.

The MVTec AD layout is ``ROOT/<category>/{train/good, test/<type>, ground_truth/<type>/<name>_mask.png}``;
``test/good`` holds the normal test images, every other ``test/<type>`` the defects of that type. MVTec AD 2,
MVTec LOCO, MPDD and BTAD vary it (folder names, where masks lie, how a mask is named): ``FolderLayout`` says how.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from robustad.errors import RobustadError
from robustad.kit.images import check_mask_matches, folder_entries, image_files, is_image_file
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


def sorted_by_path(samples: Iterable[Sample]) -> list[Sample]:
    """Samples in path order, compared as POSIX strings so every platform sorts alike."""
    return sorted(samples, key=lambda s: s.path.as_posix())


def mvtec_mask(mask_folder: Path, image: Path) -> Path:
    """``<name>_mask.png`` (the official name), else a ``<name>_mask`` file in another image format."""
    official = mask_folder / f"{image.stem}_mask.png"
    if official.is_file() or not mask_folder.is_dir():
        return official
    others = sorted(p for p in folder_entries(mask_folder) if p.stem == f"{image.stem}_mask" and is_image_file(p))
    return others[0] if others else official


@dataclass(frozen=True)
class FolderLayout:
    """Where one category's images and masks lie, as paths relative to the category folder.

    ``test`` holds one folder per image type (``normal`` for the normal images); the masks of type ``t`` lie in
    ``ground_truth/t`` and ``mask_of(that folder, image)`` names the mask (a file, or a folder of masks) of an image.
    """

    train: str = "train/good"
    test: str = "test"
    normal: str = NORMAL
    ground_truth: str = "ground_truth"
    mask_of: Callable[[Path, Path], Path] = mvtec_mask
    not_types: frozenset[str] = frozenset()  # folders under ``test`` that hold no test images


MVTEC_LAYOUT = FolderLayout()


def present_categories(root: Path, layout: FolderLayout = MVTEC_LAYOUT,
                       known: Collection[str] | None = None) -> list[str]:
    """Sub-folders of ``root`` that hold the layout's training folder (only the ``known`` names, when given)."""
    return sorted(p.name for p in folder_entries(root)
                  if (p / layout.train).is_dir() and (known is None or p.name in known))


def mvtec_categories(root: Path) -> list[str]:
    """Sub-folders of ``root`` that hold a ``train/good`` folder."""
    return present_categories(root)


@dataclass(frozen=True)
class Release:
    """A released dataset read in place: its official category names, each a folder laid out as ``layout``."""

    dataset: str
    names: tuple[str, ...]
    layout: FolderLayout = MVTEC_LAYOUT

    def categories(self, root: Path | None) -> list[str]:
        """The official categories present under ``root`` (other sub-folders are ignored)."""
        root = require_root(self.dataset, root)
        expected = f"folders like {self.names[0]}/ holding {self.layout.train}/ and {self.layout.test}/<type>/"
        return require_categories(self.dataset, root, present_categories(root, self.layout, self.names), expected)

    def load(self, root: Path | None, category: str, defects: Collection[str] | None = None) -> CategoryData:
        """One official category's training normals and labelled test images (see ``read_layout``)."""
        root = require_root(self.dataset, root)
        present = present_categories(root, self.layout, self.names)
        require_category(self.dataset, root, category, present, known=self.names)
        return read_layout(self.dataset, root / category, self.layout, defects)


def read_mvtec_layout(dataset: str, root: Path, category: str) -> CategoryData:
    """Read one category of an MVTec-layout tree, checking that every defect image has a mask of its size."""
    return read_layout(dataset, root / category, MVTEC_LAYOUT)


def read_layout(dataset: str, folder: Path, layout: FolderLayout,
                defects: Collection[str] | None = None) -> CategoryData:
    """Read the category in ``folder`` laid out as ``layout``; ``defects`` keeps only those defect types (None: all).

    Normal test images are always kept. Every defect image needs a mask of its own size.
    """
    train_folder = folder / layout.train
    if not train_folder.is_dir():
        raise RobustadError(f"{dataset} category folder {folder} has no {layout.train} folder")
    train = [Sample(path, 0) for path in image_files(train_folder)]
    if not train:
        raise RobustadError(f"no images in {train_folder}")
    test_folder = folder / layout.test
    if not test_folder.is_dir():
        raise RobustadError(f"{dataset} category folder {folder} has no {layout.test} folder")
    test = []
    for type_folder in sorted(p for p in folder_entries(test_folder) if p.is_dir() and not p.name.startswith(".")):
        defect = type_folder.name
        if defect in layout.not_types or (defect != layout.normal and defects is not None and defect not in defects):
            continue
        for path in image_files(type_folder):
            if defect == layout.normal:
                test.append(Sample(path, 0))
                continue
            mask = layout.mask_of(folder / layout.ground_truth / defect, path)
            check_mask_matches(path, mask)
            test.append(Sample(path, 1, mask, defect))
    if not test:
        raise RobustadError(f"no images in the test folders under {test_folder}")
    return CategoryData(dataset, folder.name, sorted_by_path(train), sorted_by_path(test))


class ReleaseDataset:
    """Base of a dataset plugin that reads one ``Release``: a subclass sets ``name``, ``description``, ``release``
    and, to keep only some defect types of the test split, ``defects``."""

    release: ClassVar[Release]
    defects: Collection[str] | None = None

    def categories(self, root: Path | None) -> list[str]:
        """The release's official categories present under ``root``."""
        return self.release.categories(root)

    def load(self, root: Path | None, category: str) -> CategoryData:
        """One category's training normals and labelled test images."""
        return self.release.load(root, category, self.defects)
