"""``bench --save-examples N``: small PNGs of the first N anomalous eval images of every attacked cell, for the site's
adversarial gallery (the layout is described in ``robustad.results.examples``).

The rule is deterministic: the first N anomalous images of the eval split in its order (anomalous ones, because
the attack's aim there, hiding a defect, is what the anomaly maps can show). Cells that differ only in the
calibrator share their adversarial images, so the PNGs are written once per attack prefix and each cell gets a
small JSON file naming them. Images are the detector's input (resized), maps are at the original image size with
the ground-truth defect outlined, each at most ``THUMBNAIL`` pixels on its longer side.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from robustad.engine.clean import CleanStage
from robustad.engine.guard import blame
from robustad.kit.images import load_mask
from robustad.kit.threat import LINF
from robustad.records import Cell

THUMBNAIL = 192


def chosen(stage: CleanStage, count: int) -> list[int]:
    """The eval indices whose images are kept: the first ``count`` anomalous ones."""
    return [i for i, sample in enumerate(stage.split.eval) if sample.label == 1][:count]


def folder_name(cell: Cell) -> str:
    """One folder per attack prefix: the cells that share their adversarial images share it."""
    return hashlib.sha256(repr(cell.attack_prefix).encode()).hexdigest()[:16]


def save(root: Path, cell: Cell, stage: CleanStage, kept: dict[int, tuple[torch.Tensor, torch.Tensor]],
         distances: list[np.ndarray], scores: np.ndarray, eps: float) -> None:
    """Write the cell's record, and the PNGs of its attack prefix unless an earlier cell wrote them."""
    folder = folder_name(cell)
    images = []
    for order, index in enumerate(sorted(kept)):
        sample = stage.split.eval[index]
        files = {part: f"{folder}/{order}-{part}.png" for part in
                 ("clean", "adversarial", "perturbation", "map-clean", "map-adversarial")}
        if not (root / files["map-adversarial"]).is_file():
            _write_pngs(root, files, stage, index, kept[index], distances[index], eps if cell.norm == LINF else None)
        images.append({"name": stage.names[sample.path], "label": sample.label,
                       "clean_score": float(stage.eval[index].score), "adv_score": float(scores[index]),
                       "files": files})
    record = {"cell_hash": cell.key, "folder": folder, "attack": cell.attack, "surrogate": cell.surrogate,
              "eps": cell.eps, "images": images}
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{cell.key}.json").write_text(json.dumps(record, indent=1))


def _write_pngs(root: Path, files: dict[str, str], stage: CleanStage, index: int,
                images: tuple[torch.Tensor, torch.Tensor], adv_distances: np.ndarray, bound: float | None) -> None:
    clean, adversarial = (image.detach().float().cpu().numpy().transpose(1, 2, 0) for image in images)
    (root / files["clean"]).parent.mkdir(parents=True, exist_ok=True)
    _png(root / files["clean"], clean)
    _png(root / files["adversarial"], adversarial)
    _png(root / files["perturbation"], amplified(adversarial - clean, bound))
    scored = stage.eval[index]
    with blame(stage.components["detector"]):
        maps = [stage.detector.anomaly_map(d, scored.size) for d in (scored.distances, adv_distances)]
    sample = stage.split.eval[index]
    truth = load_mask(sample.mask) if sample.mask is not None else np.zeros(scored.size, dtype=bool)
    low, high = min(float(m.min()) for m in maps), max(float(m.max()) for m in maps)
    for part, values in zip(("map-clean", "map-adversarial"), maps):
        _png(root / files[part], _heat(values, low, high, truth))


def amplified(delta: np.ndarray, bound: float | None) -> np.ndarray:
    """The perturbation as an image, 0.5 + delta / (2 scale): the scale is the L-inf eps (``bound``), which bounds
    every pixel's change, else (an L2 eps, a corruption's severity: neither bounds a pixel) the largest change in
    the image, so that the image spans the full range instead of staying nearly grey."""
    scale = float(np.abs(delta).max()) if bound is None else bound
    return 0.5 + delta / (2 * scale) if scale > 0 else np.full_like(delta, 0.5)


def _heat(values: np.ndarray, low: float, high: float, truth: np.ndarray) -> np.ndarray:
    """A map in the inferno colours on a scale shared by the clean and attacked maps, the defect outlined in cyan."""
    from matplotlib import colormaps
    from scipy.ndimage import binary_erosion

    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    rgb = colormaps["inferno"](scaled)[..., :3]
    if truth.shape == values.shape and truth.any():
        edge = truth & ~binary_erosion(truth, iterations=max(1, max(truth.shape) // 150))
        rgb[edge] = (0.0, 1.0, 1.0)
    return rgb


def _png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    image = Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8))
    image.thumbnail((THUMBNAIL, THUMBNAIL), Image.Resampling.LANCZOS)
    image.save(path, optimize=True)
