"""AnomalyDINO (Damm et al., WACV 2025): training-free patch nearest-neighbour anomaly detection.

PROTOCOL.md section 3: shorter-edge PIL-bicubic resize with a top-left crop; a memory bank of the
L2-normalised patch tokens of the reference images and their OpenCV rotations; exact cosine 1-NN search
with faiss; a zero-shot PCA foreground mask on test images; image score = mean of the top 1 % patch distances.
"""

from __future__ import annotations

from itertools import groupby

import cv2
import faiss
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.ndimage import gaussian_filter
from sklearn.decomposition import PCA

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit.backbone_checks import device_of
from robustad.records import DetectorOutput, Features

MASKED_CATEGORIES = frozenset({
    "capsule", "hazelnut", "pill", "screw", "toothbrush",  # MVTec AD: the paper's masking test
    "candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2",  # every VisA category
    "pcb1", "pcb2", "pcb3", "pcb4", "pipe_fryum",
})
ROTATION_ANGLES = (0, 45, 90, 135, 180, 225, 270, 315)
PCA_THRESHOLD = 10.0
CENTRAL_BORDER = 0.2  # share of the grid left out on each side when checking which way the mask points
MIN_CENTRAL_KEPT = 0.35  # keeping this share of the central region or less flips the PCA sign
MAP_SIGMA = 4.0
SIMILARITY_CHUNK = 2**24  # similarity-matrix entries per bank chunk in the differentiable search (64 MiB)


def rotated_views(image: Image.Image) -> list[Image.Image]:
    """The image rotated by 0, 45, ..., 315 degrees about (W/2, H/2); OpenCV bilinear, reflect-101 border, same size."""
    pixels = np.asarray(image.convert("RGB"))
    height, width = pixels.shape[:2]
    views = []
    for angle in ROTATION_ANGLES:
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
        views.append(Image.fromarray(cv2.warpAffine(
            pixels, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)))
    return views


def resize_shorter_edge(image: Image.Image, resolution: int) -> Image.Image:
    """PIL bicubic resize so the shorter edge is ``resolution`` and the long edge int(resolution*long/short)."""
    width, height = image.size
    if width <= height:
        size = (resolution, int(resolution * height / width))
    else:
        size = (int(resolution * width / height), resolution)
    return image.resize(size, Image.Resampling.BICUBIC)


def foreground_mask(tokens: np.ndarray) -> np.ndarray:
    """Zero-shot foreground (h, w) of one image from its own patch tokens (h, w, C), taken before L2 normalisation."""
    height, width, channels = tokens.shape
    pca = PCA(n_components=1, svd_solver="full")
    projection = pca.fit_transform(tokens.reshape(-1, channels).astype(np.float32))
    return mask_from_projection(projection.reshape(height, width))


def mask_from_projection(projection: np.ndarray) -> np.ndarray:
    """Keep patches whose first principal component is > 10, with the sign that keeps the centre; dilate, close (3x3).

    PCA's sign is arbitrary: when 35 % or less of the central region (20 % border excluded) survives,
    the object is on the other side, so the rule becomes -component > 10.
    """
    keep = projection > PCA_THRESHOLD
    height, width = projection.shape
    central = keep[int(height * CENTRAL_BORDER):int(height * (1 - CENTRAL_BORDER)),
                   int(width * CENTRAL_BORDER):int(width * (1 - CENTRAL_BORDER))]
    if central.sum() <= MIN_CENTRAL_KEPT * central.size:
        keep = -projection > PCA_THRESHOLD
    kernel = np.ones((3, 3), np.uint8)
    dilated = cv2.dilate(keep.astype(np.uint8), kernel)
    return cv2.morphologyEx(dilated, cv2.MORPH_CLOSE, kernel).astype(bool)


def top_count(num_patches: int) -> int:
    """How many of N patch distances the image score averages: 1 % of them, at least one."""
    return max(1, int(0.01 * num_patches))


def mean_top_percent(distances: np.ndarray) -> np.ndarray:
    """Image scores (B,) float64: mean of the top 1 % of each row of patch distances (B, N); the max when N < 100."""
    count = top_count(distances.shape[1])
    return np.partition(distances, -count, axis=1)[:, -count:].mean(axis=1, dtype=np.float64)


class AnomalyDINO:
    """Patch 1-NN cosine distance to a memory bank of (rotated) reference patches, scored by its top 1 %."""

    name = "anomalydino"
    description = ("AnomalyDINO (WACV 2025): 1-NN cosine patch distance to rotated few-shot reference patches, "
                   "mean of the top 1 %")
    memory_bank_size: int

    def __init__(self, backbone: torch.nn.Module, resolution: int, category: str, *, masking: str = "auto",
                 augment: str = "agnostic", batch_size: int = 8) -> None:
        if masking not in ("auto", "on", "off"):
            raise RobustadError(f"anomalydino: masking={masking!r}; expected auto, on or off")
        if augment not in ("agnostic", "none"):
            raise RobustadError(f"anomalydino: augment={augment!r}; expected agnostic (8 rotations) or none")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise RobustadError(f"anomalydino: batch_size={batch_size!r}; expected a positive integer")
        if not isinstance(resolution, int) or resolution < backbone.patch_size:
            raise RobustadError(f"anomalydino: resolution={resolution!r}; expected an integer >= the backbone's "
                                f"patch size {backbone.patch_size}")
        self.backbone = backbone
        self.resolution = resolution
        self.category = category
        self.masking = masking
        self.augment = augment
        self.batch_size = batch_size
        self.uses_masking = masking == "on" or (masking == "auto" and category in MASKED_CATEGORIES)
        self.memory_bank_size = 0
        self._bank: torch.Tensor | None = None  # (M, C) L2-normalised, on the backbone's device
        self._index: faiss.IndexFlatIP | None = None

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """(3, H, W) in [0, 1]: short edge = resolution (PIL bicubic on uint8 RGB), top-left crop to the patch grid."""
        resized = resize_shorter_edge(image.convert("RGB"), self.resolution)
        pixels = torch.from_numpy(np.array(resized)).permute(2, 0, 1).float().div(255)
        patch = self.backbone.patch_size
        height, width = pixels.shape[1:]
        return pixels[:, :height - height % patch, :width - width % patch].contiguous()

    def fit(self, reference: list[Image.Image]) -> None:
        """Build the memory bank from the reference images (and their rotations); masking never applies here."""
        if not reference:
            raise RobustadError("anomalydino: fit needs at least one reference image, got none")
        views = [view for image in reference
                 for view in (rotated_views(image) if self.augment == "agnostic" else [image])]
        bank = self._embed([self.preprocess(view) for view in views])
        index = faiss.IndexFlatIP(bank.shape[1])
        index.add(bank.cpu().numpy())
        self._bank, self._index, self.memory_bank_size = bank, index, bank.shape[0]

    def score(self, features: Features) -> DetectorOutput:
        """Image scores, patch distances (exact faiss search) and foreground masks of a batch of features."""
        index = self._fitted()[1]
        tokens = features.patch_tokens.detach().float().cpu()
        batch, height, width, channels = tokens.shape
        self._check_channels(channels)
        queries = F.normalize(tokens.reshape(-1, channels), dim=-1).numpy()
        similarity, _ = index.search(queries, 1)
        distances = (1.0 - similarity[:, 0]).reshape(batch, height, width).astype(np.float32)
        masks = self._foreground(tokens.numpy())
        if masks is not None:
            distances[~masks] = 0.0
        return DetectorOutput(scores=mean_top_percent(distances.reshape(batch, -1)),
                              patch_distances=distances, masks=masks)

    def score_tensor(self, features: Features, masks: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """Differentiable image scores (B,), equal to ``score`` to 1e-5.

        ``masks`` (B, h, w) bool are the clean image's foreground masks (frozen during an attack); None means
        the masks ``score`` would compute from these features (none when masking is off). The nearest bank
        patch is found without gradient in bank chunks; the distance to it is then recomputed differentiably,
        which is the gradient of the max over the bank.
        """
        bank = self._fitted()[0]
        tokens = features.patch_tokens
        batch, height, width, channels = tokens.shape
        self._check_channels(channels)
        bank = bank.to(tokens.device)
        queries = F.normalize(tokens.reshape(batch, height * width, channels).float(), dim=-1)
        nearest = _nearest_rows(queries.detach().reshape(-1, channels), bank).reshape(batch, -1)
        distances = 1.0 - (queries * bank[nearest]).sum(dim=-1)
        if masks is None:
            masks = self._foreground(tokens.detach().float().cpu().numpy())
        if masks is not None:
            keep = torch.as_tensor(masks, dtype=torch.bool, device=tokens.device)
            if tuple(keep.shape) != (batch, height, width):
                raise RobustadError(f"anomalydino: masks of shape {tuple(keep.shape)}; expected "
                                    f"{(batch, height, width)} (batch, patch rows, patch columns)")
            distances = distances * keep.reshape(batch, -1)
        return distances.topk(top_count(distances.shape[1]), dim=1).values.mean(dim=1)

    @staticmethod
    def anomaly_map(patch_distances: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Pixel map (H, W) of the original image: bilinear resize of the patch grid (OpenCV), Gaussian blur sigma 4."""
        grid = np.asarray(patch_distances, dtype=np.float32)
        if grid.ndim != 2:
            raise RobustadError(f"anomalydino: patch_distances of shape {grid.shape}; expected a (h, w) grid")
        height, width = size
        if height < 1 or width < 1:
            raise RobustadError(f"anomalydino: map size {tuple(size)}; expected positive (height, width)")
        resized = cv2.resize(grid, (int(width), int(height)), interpolation=cv2.INTER_LINEAR)
        return gaussian_filter(resized, sigma=MAP_SIGMA, mode="reflect", truncate=4.0)

    def _embed(self, images: list[torch.Tensor]) -> torch.Tensor:
        """L2-normalised patch tokens (n, C) of the images, forwarded in same-size batches without gradient."""
        device = device_of(self.backbone)
        chunks = []
        with torch.no_grad():
            for _, group in groupby(images, key=lambda image: tuple(image.shape)):
                same_size = list(group)
                for start in range(0, len(same_size), self.batch_size):
                    batch = torch.stack(same_size[start:start + self.batch_size]).to(device)
                    tokens = self.backbone(batch).patch_tokens.float()
                    chunks.append(F.normalize(tokens.reshape(-1, tokens.shape[-1]), dim=-1))
        return torch.cat(chunks)

    def _foreground(self, tokens: np.ndarray) -> np.ndarray | None:
        """Foreground masks (B, h, w) of a batch of raw patch tokens (B, h, w, C), or None when masking is off."""
        if not self.uses_masking:
            return None
        return np.stack([foreground_mask(image_tokens) for image_tokens in tokens])

    def _fitted(self) -> tuple[torch.Tensor, faiss.IndexFlatIP]:
        if self._bank is None or self._index is None:
            raise RobustadError("anomalydino: no memory bank; call fit(reference images) before scoring")
        return self._bank, self._index

    def _check_channels(self, channels: int) -> None:
        if channels != self._bank.shape[1]:
            raise RobustadError(f"anomalydino: features have {channels} channels; the memory bank has "
                                f"{self._bank.shape[1]} (same backbone for fit and score)")


def _nearest_rows(queries: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """Index of each query's most similar bank row (inner product), searched in chunks to bound memory."""
    rows = max(1, SIMILARITY_CHUNK // max(1, queries.shape[0]))
    best = torch.full((queries.shape[0],), -torch.inf, device=queries.device)
    nearest = torch.zeros(queries.shape[0], dtype=torch.long, device=queries.device)
    for start in range(0, bank.shape[0], rows):
        similarity, index = (queries @ bank[start:start + rows].T).max(dim=1)
        better = similarity > best
        best = torch.where(better, similarity, best)
        nearest = torch.where(better, index + start, nearest)
    return nearest


@hookimpl
def register_detectors(register):
    register(AnomalyDINO)
