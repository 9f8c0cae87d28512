"""SubspaceAD (Lendering et al.): distance of patch features to the PCA subspace of a few normal images.

As the authors' code (``CLendering/SubspaceAD``) runs with ``scripts/benchmark_few_shot.sh``: the image resized
to resolution x resolution (PIL bicubic on 8-bit RGB, no crop: their Hugging Face processor settings); patch
features = the mean of intermediate ViT blocks' outputs (before the final norm) at 55-70 % depth; each reference
image joined by 30 copies rotated by an angle drawn uniformly from [0, 345] degrees (torchvision's
``RandomRotation``: nearest, same canvas, black fill; none for MVTec's transistor, as their default
``no_aug_categories``), drawn from a generator seeded by the cell seed; a PCA in float64 keeping the fewest
components that explain 99 % of the variance; a patch's score is its squared reconstruction residual; the patch
grid is resized bilinearly to the input size and blurred (OpenCV 3x3 Gaussian, sigma 4, reflect-101 border), and
the image score is the mean of that map's top 1 %. docs/choices.md lists what the code decides beyond theirs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit import options
from robustad.kit.backbone_checks import check_layers, check_resolution, device_of
from robustad.records import DetectorOutput, Features

if TYPE_CHECKING:
    import torch

AUTO_BLOCKS = {12: range(7, 9), 24: range(13, 18), 40: range(22, 29)}  # the authors' choice per ViT depth
UNAUGMENTED_CATEGORIES = frozenset({"transistor"})  # the authors' default --no_aug_categories
ROTATION_RANGE = (0.0, 345.0)  # degrees, their RandomRotation(degrees=(0, 345))
MAP_SIGMA = 4.0
MAP_TAPS = 3  # their cv2.GaussianBlur(map, (3, 3), 4)
TOP_SHARE = 0.01


def auto_layers(backbone: object) -> tuple[str, ...]:
    """The authors' blocks for a ViT of 12, 24 or 40 blocks (``blocks.<i>`` layers); none (the backbone's own
    patch tokens) for any other backbone, e.g. a CNN, whose stages differ in width and cannot be averaged."""
    names = tuple(getattr(backbone, "layer_names", ()))
    if not names or not all(re.fullmatch(r"blocks\.\d+", name) for name in names):
        return ()
    depth = len(names)
    if depth not in AUTO_BLOCKS:
        raise RobustadError(f"subspacead: layers=auto knows ViTs of {', '.join(map(str, AUTO_BLOCKS))} blocks; "
                            f"backbone {getattr(backbone, 'name', '?')} has {depth}: pass layers=blocks.<i>,...")
    return tuple(f"blocks.{index}" for index in AUTO_BLOCKS[depth])


def rotation_angles(count: int, seed: int) -> list[float]:
    """``count`` angles drawn uniformly from [0, 345] degrees, as ``RandomRotation.get_params``, seeded."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    low, high = ROTATION_RANGE
    return [float(torch.empty(1).uniform_(low, high, generator=generator)) for _ in range(count)]


def fit_subspace(tokens: torch.Tensor, explained: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(C,)`` and principal directions ``(C, k)`` in float64: the fewest top-variance eigenvectors of the
    covariance (normalised by n - 1) whose variances reach ``explained`` of the total."""
    import torch

    samples = tokens.double()
    mean = samples.mean(dim=0)
    centred = samples - mean
    covariance = centred.T @ centred / (samples.shape[0] - 1)
    variances, vectors = torch.linalg.eigh(covariance)
    order = torch.argsort(variances, descending=True)
    variances, vectors = variances[order], vectors[:, order]
    cumulative = torch.cumsum(variances, dim=0) / variances.sum()
    target = torch.tensor([explained], dtype=cumulative.dtype)
    count = min(int(torch.searchsorted(cumulative, target)) + 1, vectors.shape[1])
    return mean, vectors[:, :count]


def residuals(tokens: torch.Tensor, mean: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Squared distance of each token (last axis) to the affine subspace ``mean + span(directions)``, float64."""
    centred = tokens.double() - mean
    return (centred - (centred @ directions) @ directions.T).pow(2).sum(dim=-1)


def map_operators(cells: int, pixels: int) -> np.ndarray:
    """The ``(pixels, cells)`` matrix of one axis: OpenCV's bilinear resize (half-pixel centres) of a grid of
    ``cells`` to ``pixels``, then the 3-tap sigma-4 Gaussian with a reflect-101 border."""
    import cv2

    resize = cv2.resize(np.eye(cells, dtype=np.float64), (cells, pixels), interpolation=cv2.INTER_LINEAR)
    kernel = cv2.getGaussianKernel(MAP_TAPS, MAP_SIGMA).ravel()
    padded = np.concatenate([resize[1:2], resize, resize[-2:-1]])  # reflect-101: the edge row is not repeated
    return kernel[0] * padded[:-2] + kernel[1] * padded[1:-1] + kernel[2] * padded[2:]


def parse_layers(text: str) -> tuple[str, ...] | None:
    """``"auto"`` -> None; ``"blocks.7,blocks.8"`` -> the names; a one-line error for empty or repeated ones."""
    if str(text).strip() == "auto":
        return None
    names = tuple(name.strip() for name in str(text).split(","))
    if not all(names) or len(set(names)) != len(names):
        raise RobustadError(f"subspacead: layers={text!r}; expected auto or distinct comma-separated layer "
                            "names, e.g. blocks.7,blocks.8")
    return names


class SubspaceAD:
    """Squared residual of each patch feature off the reference PCA subspace; image score = mean of the top 1 %
    of the resized, blurred residual map."""

    name = "subspacead"
    description = ("SubspaceAD: PCA (99 % variance) of mean mid-depth ViT patch features of rotated references; "
                   "reconstruction residual, mean of the map's top 1 %")
    memory_bank_size: int  # here: the principal components kept

    def __init__(self, backbone: torch.nn.Module, resolution: int, category: str = "", seed: int = 0, *,
                 layers: str = "auto", explained_variance: float = 0.99, augmentations: int = 30,
                 batch_size: int = 8) -> None:
        chosen = parse_layers(layers)
        self.layers = auto_layers(backbone) if chosen is None else check_layers(backbone, chosen, "subspacead")
        self.explained_variance = options.fraction("subspacead", "explained_variance", explained_variance)
        augmentations = options.integer("subspacead", "augmentations", augmentations, 0)
        self.batch_size = options.integer("subspacead", "batch_size", batch_size, 1)
        check_resolution(resolution, backbone, "subspacead")
        self.backbone = backbone
        self.resolution = resolution
        self.seed = int(seed)
        self.augmentations = 0 if category in UNAUGMENTED_CATEGORIES else augmentations
        self.memory_bank_size = 0
        self._subspace: tuple[torch.Tensor, torch.Tensor] | None = None  # mean (C,), directions (C, k), float64

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """(3, res, res) in [0, 1]: PIL bicubic resize of the 8-bit RGB image to a square, no crop."""
        import torch

        resized = image.convert("RGB").resize((self.resolution, self.resolution), Image.Resampling.BICUBIC)
        return torch.from_numpy(np.array(resized)).permute(2, 0, 1).float().div(255)

    def views(self, image: Image.Image) -> list[Image.Image]:
        """The reference image and its rotated copies, rotated on the original image before resizing."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        rgb = image.convert("RGB")
        return [rgb] + [TF.rotate(rgb, angle, InterpolationMode.NEAREST, expand=False, fill=0)
                        for angle in rotation_angles(self.augmentations, self.seed)]

    def fit(self, reference: list[Image.Image]) -> None:
        """The PCA subspace of the patch features of the reference images and their rotations."""
        import torch

        if not reference:
            raise RobustadError("subspacead: fit needs at least one reference image, got none")
        images = [self.preprocess(view) for image in reference for view in self.views(image)]
        device = device_of(self.backbone)
        chunks = []
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                batch = torch.stack(images[start:start + self.batch_size]).to(device)
                tokens = self.tokens(self.backbone(batch, layers=self.layers))
                chunks.append(tokens.reshape(-1, tokens.shape[-1]).cpu())
        mean, directions = fit_subspace(torch.cat(chunks), self.explained_variance)
        self._subspace = (mean.to(device), directions.to(device))
        self.memory_bank_size = directions.shape[1]

    def tokens(self, features: Features) -> torch.Tensor:
        """Patch features ``(B, h, w, C)``: the mean of the chosen layers, or the patch tokens when there are none."""
        import torch

        if not self.layers:
            return features.patch_tokens
        missing = [name for name in self.layers if name not in features.layers]
        if missing:
            raise RobustadError(f"subspacead: features lack layer {missing[0]!r}; call the backbone with "
                                f"layers={list(self.layers)}")
        maps = [features.layers[name] for name in self.layers]
        shapes = {tuple(m.shape) for m in maps}
        if len(shapes) != 1:
            raise RobustadError(f"subspacead: layers {', '.join(self.layers)} have shapes {sorted(shapes)}; "
                                "averaging needs one shape")
        return torch.stack(maps).mean(dim=0).permute(0, 2, 3, 1)

    def score(self, features: Features) -> DetectorOutput:
        """Image scores and patch residuals ``(B, h, w)`` of a batch, without gradient."""
        import torch

        with torch.no_grad():
            scores, distances = self._scores(features)
        return DetectorOutput(scores=scores.cpu().numpy(), patch_distances=distances.float().cpu().numpy())

    def score_tensor(self, features: Features, masks: object = None) -> torch.Tensor:
        """Differentiable image scores ``(B,)``, the same values as ``score``; SubspaceAD has no masks to hold."""
        return self._scores(features)[0]

    def anomaly_map(self, patch_distances: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Pixel map ``(H, W)`` float32 of the original image: the authors' map at the input size (bilinear resize,
        3x3 Gaussian), resized bilinearly to the image."""
        import cv2

        grid = np.asarray(patch_distances, dtype=np.float64)
        if grid.ndim != 2:
            raise RobustadError(f"subspacead: patch_distances of shape {grid.shape}; expected a (h, w) grid")
        height, width = (int(side) for side in size)
        if height < 1 or width < 1:
            raise RobustadError(f"subspacead: map size {tuple(size)}; expected positive (height, width)")
        square = map_operators(grid.shape[0], self.resolution) @ grid @ map_operators(grid.shape[1],
                                                                                       self.resolution).T
        return cv2.resize(square.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)

    def _scores(self, features: Features) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        if self._subspace is None:
            raise RobustadError("subspacead: no subspace; call fit(reference images) before scoring")
        mean, directions = self._subspace
        tokens = self.tokens(features)
        batch, height, width, channels = tokens.shape
        if channels != mean.shape[0]:
            raise RobustadError(f"subspacead: features have {channels} channels; the subspace has "
                                f"{mean.shape[0]} (same backbone and layers for fit and score)")
        distances = residuals(tokens, mean.to(tokens.device), directions.to(tokens.device))
        rows = torch.as_tensor(map_operators(height, self.resolution), device=tokens.device)
        columns = torch.as_tensor(map_operators(width, self.resolution), device=tokens.device)
        maps = rows @ distances @ columns.T  # (B, res, res)
        flat = maps.reshape(batch, -1)
        count = max(1, int(flat.shape[1] * TOP_SHARE))
        return flat.topk(count, dim=1).values.mean(dim=1), distances


@hookimpl
def register_detectors(register):
    register(SubspaceAD)
