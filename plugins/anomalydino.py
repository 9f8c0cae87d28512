"""AnomalyDINO (Damm et al., WACV 2025): training-free patch nearest-neighbour anomaly detection.

docs/protocol.md section 3: shorter-edge PIL-bicubic resize with a top-left crop; a memory bank of the
L2-normalised patch tokens of the reference images and their OpenCV rotations; exact cosine 1-NN search
with faiss; a zero-shot PCA foreground mask on test images; image score = mean of the top 1 % patch distances.
torch, faiss, OpenCV, scipy and scikit-learn are imported where they are used, so listing plugins stays fast.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import groupby
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit import options
from robustad.kit.backbone_checks import device_of
from robustad.records import DetectorOutput, Features

if TYPE_CHECKING:
    import faiss
    import torch

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
MAP_TRUNCATE = 4.0  # scipy's default: the blur kernel reaches int(4 * sigma + 0.5) = 16 pixels
MASK_MORPHOLOGIES = ("raster", "grid")
SIMILARITY_CHUNK = 2**24  # similarity-matrix entries per bank chunk in the differentiable search (64 MiB)


def rotated_views(image: Image.Image) -> list[Image.Image]:
    """The image rotated by 0, 45, ..., 315 degrees about (W/2, H/2); OpenCV bilinear, reflect-101 border, same size."""
    import cv2

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


def foreground_mask(tokens: np.ndarray, morphology: str = "raster") -> np.ndarray:
    """Zero-shot foreground (h, w) of one image from its own patch tokens (h, w, C), taken before L2 normalisation."""
    from sklearn.decomposition import PCA

    height, width, channels = tokens.shape
    pca = PCA(n_components=1, svd_solver="full")
    projection = pca.fit_transform(tokens.reshape(-1, channels).astype(np.float32))
    return mask_from_projection(projection.reshape(height, width), morphology)


def mask_from_projection(projection: np.ndarray, morphology: str = "raster") -> np.ndarray:
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
    return dilate_and_close(keep, morphology)


def check_morphology(morphology: str) -> None:
    """A one-line error unless ``morphology`` names a mask morphology rule."""
    if morphology not in MASK_MORPHOLOGIES:
        raise RobustadError(f"anomalydino: mask_morphology={morphology!r}; expected raster (the authors' code: "
                            "along the flattened patch sequence) or grid (2-D patch neighbours)")


def dilate_and_close(keep: np.ndarray, morphology: str = "raster") -> np.ndarray:
    """OpenCV 3x3 dilation, then 3x3 closing, of a (h, w) patch mask.

    ``raster`` is what the authors' code does: it runs OpenCV on the flattened (h*w, 1) column, so a patch's
    neighbours are the previous and next patches in raster order (wrapping from a row's end to the next row's
    start); OpenCV's default border never wins, so the column's ends have one neighbour. ``grid`` runs it on the
    (h, w) grid: the 8 neighbours in 2-D.
    """
    import cv2

    check_morphology(morphology)
    kernel = np.ones((3, 3), np.uint8)
    flags = keep.astype(np.uint8)
    dilated = cv2.dilate(flags.reshape(-1, 1) if morphology == "raster" else flags, kernel)
    return cv2.morphologyEx(dilated, cv2.MORPH_CLOSE, kernel).astype(bool).reshape(keep.shape)


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
    primary_option = "masking"  # what anomalydino:VALUE sets
    description = ("AnomalyDINO (WACV 2025): 1-NN cosine patch distance to rotated few-shot reference patches, "
                   "mean of the top 1 %")
    memory_bank_size: int

    def __init__(self, backbone: torch.nn.Module, resolution: int, category: str, *, masking: str = "auto",
                 mask_morphology: str = "raster", augment: str = "agnostic", batch_size: int = 8) -> None:
        self.check_options(masking=masking, mask_morphology=mask_morphology, augment=augment, batch_size=batch_size)
        if not isinstance(resolution, int) or resolution < backbone.patch_size:
            raise RobustadError(f"anomalydino: resolution={resolution!r}; expected an integer >= the backbone's "
                                f"patch size {backbone.patch_size}")
        self.backbone = backbone
        self.resolution = resolution
        self.category = category
        self.masking = masking
        self.mask_morphology = mask_morphology
        self.augment = augment
        self.batch_size = batch_size
        self.uses_masking = masking == "on" or (masking == "auto" and category in MASKED_CATEGORIES)
        self.memory_bank_size = 0
        self._bank: torch.Tensor | None = None  # (M, C) L2-normalised, on the backbone's device
        self._index: faiss.IndexFlatIP | None = None

    @staticmethod
    def check_options(*, masking: str, mask_morphology: str, augment: str, batch_size: int) -> None:
        """One-line errors for bad option values, called by the engine when cells are built (before any work)."""
        if masking not in ("auto", "on", "off"):
            raise RobustadError(f"anomalydino: masking={masking!r}; expected auto, on or off")
        check_morphology(mask_morphology)
        if augment not in ("agnostic", "none"):
            raise RobustadError(f"anomalydino: augment={augment!r}; expected agnostic (8 rotations) or none")
        options.integer("anomalydino", "batch_size", batch_size, 1)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """(3, H, W) in [0, 1]: short edge = resolution (PIL bicubic on uint8 RGB), top-left crop to the patch grid."""
        import torch

        resized = resize_shorter_edge(image.convert("RGB"), self.resolution)
        pixels = torch.from_numpy(np.array(resized)).permute(2, 0, 1).float().div(255)
        patch = self.backbone.patch_size
        height, width = pixels.shape[1:]
        return pixels[:, :height - height % patch, :width - width % patch].contiguous()

    def fit(self, reference: list[Image.Image]) -> None:
        """Build the memory bank from the reference images (and their rotations); masking never applies here."""
        import faiss

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
        import torch.nn.functional as F

        index = self._fitted()[1]
        tokens = features.patch_tokens.detach().float().cpu()
        batch, height, width, channels = tokens.shape
        self._check_channels(channels)
        queries = F.normalize(tokens.reshape(batch, -1, channels), dim=-1).numpy()
        # one image at a time: BLAS blocks a search by the number of queries, so a batched search would make an
        # image's distances depend (in the last bit) on the other images of its batch
        similarity = np.stack([index.search(image_queries, 1)[0][:, 0] for image_queries in queries])
        distances = (1.0 - similarity).reshape(batch, height, width).astype(np.float32)
        masks = self._foreground(tokens.numpy())
        if masks is not None:
            distances[~masks] = 0.0
        return DetectorOutput(scores=mean_top_percent(distances.reshape(batch, -1)),
                              patch_distances=distances, masks=masks)

    def score_tensor(self, features: Features, masks: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """Differentiable image scores (B,), equal to ``score`` to 1e-5.

        ``masks`` (B, h, w) bool are foreground masks to use instead of the detector's own (e.g. the clean
        image's, frozen during an attack); None means the masks ``score`` would compute from these very features
        (none when masking is off). The nearest bank patch is found without gradient in bank chunks; the distance
        to it is then recomputed differentiably, which is the gradient of the max over the bank.
        """
        import torch
        import torch.nn.functional as F

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
        """Pixel map (H, W) float32 of the original image: OpenCV bilinear resize of the patch grid, then scipy's
        Gaussian blur (sigma 4, reflect, truncate 4).

        Both steps are linear and act on rows and columns separately, so the map is ``A @ grid @ B.T`` with
        A = blur(resize(identity)) per axis (cached per size): the same values as resizing to the full image and
        blurring it (to ~1e-7 of the map's peak), about 10x faster at 900x900. OpenCV's float64 ``gemm`` does the
        products: unlike a threaded BLAS it does not slow down by 10x on a loaded machine.
        """
        import cv2

        grid = np.asarray(patch_distances, dtype=np.float64)
        if grid.ndim != 2:
            raise RobustadError(f"anomalydino: patch_distances of shape {grid.shape}; expected a (h, w) grid")
        height, width = (int(side) for side in size)
        if height < 1 or width < 1:
            raise RobustadError(f"anomalydino: map size {tuple(size)}; expected positive (height, width)")
        rows, columns = _resize_and_blur(grid.shape[0], height), _resize_and_blur(grid.shape[1], width)
        blurred_rows = cv2.gemm(rows, grid, 1.0, None, 0.0)
        return cv2.gemm(blurred_rows, columns, 1.0, None, 0.0, flags=cv2.GEMM_2_T).astype(np.float32)

    def _embed(self, images: list[torch.Tensor]) -> torch.Tensor:
        """L2-normalised patch tokens (n, C) of the images, forwarded in same-size batches without gradient."""
        import torch
        import torch.nn.functional as F


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
        return np.stack([foreground_mask(image_tokens, self.mask_morphology) for image_tokens in tokens])

    def _fitted(self) -> tuple[torch.Tensor, faiss.IndexFlatIP]:
        if self._bank is None or self._index is None:
            raise RobustadError("anomalydino: no memory bank; call fit(reference images) before scoring")
        return self._bank, self._index

    def _check_channels(self, channels: int) -> None:
        if channels != self._bank.shape[1]:
            raise RobustadError(f"anomalydino: features have {channels} channels; the memory bank has "
                                f"{self._bank.shape[1]} (same backbone for fit and score)")


@lru_cache(maxsize=16)
def _resize_and_blur(cells: int, pixels: int) -> np.ndarray:
    """(pixels, cells) float64: OpenCV's bilinear resize of a line of ``cells`` values to ``pixels`` values, then
    scipy's 1-D Gaussian (sigma 4, reflect, truncate 4) along it; read-only because it is cached."""
    import cv2
    from scipy.ndimage import gaussian_filter1d

    resize = cv2.resize(np.eye(cells), (cells, pixels), interpolation=cv2.INTER_LINEAR)
    matrix = gaussian_filter1d(resize, MAP_SIGMA, axis=0, mode="reflect", truncate=MAP_TRUNCATE)
    matrix.setflags(write=False)
    return matrix


def _nearest_rows(queries: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """Index of each query's most similar bank row (inner product), searched in chunks to bound memory."""
    import torch

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
