"""Names that do not depend on where the data lies: the data's digest, per-image seeds, the reference set's hash.

Every image is named by its path relative to the category's common folder, so moving or re-mounting a dataset
keeps cell keys, random draws and rows unchanged (docs/protocol.md section 9).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from robustad.records import CategoryData, Sample

SEED_BITS = 63


def relative_names(data: CategoryData) -> dict[Path, str]:
    """Each sample's image (and mask) path -> its POSIX path relative to the folder common to all of them."""
    paths = [p for s in data.train + data.test for p in (s.path, s.mask) if p is not None]
    absolute = {p: Path(os.path.abspath(p)) for p in paths}
    root = Path(os.path.commonpath([str(a.parent) for a in absolute.values()])) if absolute else Path(".")
    return {p: a.relative_to(root).as_posix() for p, a in absolute.items()}


def data_id(data: CategoryData) -> str:
    """A short digest of the category's images: relative paths, byte sizes, labels, and masks likewise."""
    names = relative_names(data)
    digest = hashlib.sha256()
    for part, samples in (("train", data.train), ("test", data.test)):
        for sample in sorted(samples, key=lambda s: names[s.path]):
            mask = "" if sample.mask is None else f"{names[sample.mask]}:{_size(sample.mask)}"
            digest.update(f"{part}\t{names[sample.path]}\t{_size(sample.path)}\t{sample.label}\t{mask}\n".encode())
    return digest.hexdigest()[:16]


def data_sha(data: CategoryData) -> str:
    """A short digest of the bytes of the category's images and masks, under their relative names: images
    replaced by others of the same size change it."""
    names = relative_names(data)
    digest = hashlib.sha256()
    for part, samples in (("train", data.train), ("test", data.test)):
        for sample in sorted(samples, key=lambda s: names[s.path]):
            for path in (sample.path, sample.mask):
                if path is not None:
                    digest.update(f"{part}\t{names[path]}\t{sample.label}\t{_content(path)}\n".encode())
    return digest.hexdigest()[:16]


def image_seed(seed: int, name: str) -> int:
    """The seed of one image's random draws: a hash of (cell seed, relative image name), so a draw does not
    depend on the batch, the order or the executor that handles the image."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)


def names_hash(samples: Iterable[Sample], names: dict[Path, str]) -> str:
    """A short hash of the relative names of these samples (the reference set a row used)."""
    text = "\n".join(sorted(names[s.path] for s in samples))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _content(path: Path) -> str:
    """sha256 of a file's bytes (of every file below a folder), remembered per (path, size, mtime) in this
    process: a grid reads each category once, however many cells it has."""
    if path.is_dir():
        return hashlib.sha256("".join(_content(p) for p in sorted(path.rglob("*")) if p.is_file()).encode()
                              ).hexdigest()
    status = path.stat()
    stamp = (os.path.abspath(path), status.st_size, status.st_mtime_ns)
    if stamp not in _CONTENT:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _CONTENT[stamp] = digest.hexdigest()
    return _CONTENT[stamp]


_CONTENT: dict[tuple, str] = {}


def _size(path: Path) -> int:
    """Bytes of a file, or of every file below a folder (a mask given as a folder of part masks)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in sorted(path.rglob("*")) if p.is_file())
    return path.stat().st_size if path.exists() else -1
