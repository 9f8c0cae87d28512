"""PatchCore (Roth et al., CVPR 2022) as anomalib 2.7.0's ``PatchcoreModel`` computes it, differentiably.

Input: the RGB image as a float tensor in [0,1], resized to resolution x resolution by torchvision's bilinear
antialiased ``Resize`` (anomalib's default pre-processor; the backbone normalises). Features: the named CNN
stages ``layers`` (default layer2, layer3), each 3x3 average-pooled (stride 1, zero padding 1), the deeper ones
bilinearly resized to the first one's grid, concatenated. Memory bank: the reference patches, thinned by greedy
k-center on a sparse random projection (``coreset_ratio``; 1.0 keeps every patch), seeded by the cell seed.
Score: each patch's exact Euclidean distance to its nearest bank entry; the image score is the largest, scaled by
the paper's weight 1 - softmax over its distances to the ``num_neighbors`` bank neighbours of that entry.
Anomaly map: the patch distances, nearest-upsampled to the model input, Gaussian-blurred (sigma 4).
torch and torchvision are imported where they are used, so listing plugins stays fast.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit import options
from robustad.kit.backbone_checks import check_layers, check_resolution, device_of
from robustad.records import DetectorOutput, Features

if TYPE_CHECKING:
    import torch
    from PIL import Image

PROJECTION_EPS = 0.9  # anomalib's SparseRandomProjection(eps=0.9) in front of the k-center search
QUERY_CHUNK = 1024  # query patches per distance matrix in the nearest-neighbour search, as anomalib
CANDIDATES = 8  # bank rows per query ranked again by their exact distance |q - b|
MAP_SIGMA = 4.0


def johnson_lindenstrauss_dim(n_samples: int, eps: float = PROJECTION_EPS) -> int:
    """Dimensions that keep pairwise distances of ``n_samples`` points within 1 +- eps (Dasgupta and Gupta)."""
    return int(4 * math.log(n_samples) / (eps**2 / 2 - eps**3 / 3))


def sparse_random_projection(n_samples: int, n_features: int, generator: torch.Generator) -> torch.Tensor:
    """The ``(n_components, n_features)`` matrix of Li et al.'s very sparse projection, density 1/sqrt(d).

    Each entry is nonzero with probability density, then +-sqrt(1/density / n_components) with equal chance: the
    distribution anomalib and scikit-learn draw from (a Binomial count of nonzeros per row at uniform positions).
    """
    import torch

    components = johnson_lindenstrauss_dim(n_samples)
    density = 1 / math.sqrt(n_features)
    nonzero = torch.rand(components, n_features, generator=generator) < density
    signs = torch.where(torch.rand(components, n_features, generator=generator) < 0.5, -1.0, 1.0)
    return nonzero * signs * math.sqrt(1 / density) / math.sqrt(components)


def k_center_greedy(points: torch.Tensor, count: int, start: int) -> list[int]:
    """Indices of ``count`` points chosen greedily from ``start``: each next one the farthest from those chosen."""
    import torch

    chosen = [start]
    nearest = torch.linalg.norm(points - points[start], dim=1)
    for _ in range(count - 1):
        index = int(torch.argmax(nearest))
        chosen.append(index)
        nearest = torch.minimum(nearest, torch.linalg.norm(points - points[index], dim=1))
    return chosen


def coreset(bank: torch.Tensor, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """The k-center coreset of ``int(len(bank) * ratio)`` rows, searched on a sparse random projection (drawn from
    the CPU ``generator``, so the same seed picks the same rows on any device)."""
    import torch

    count = int(bank.shape[0] * ratio)
    if count < 1:
        raise RobustadError(f"patchcore: coreset_ratio={ratio} keeps no patch of {bank.shape[0]}; raise it")
    projection = sparse_random_projection(bank.shape[0], bank.shape[1], generator).to(bank)
    start = int(torch.randint(bank.shape[0], (1,), generator=generator))
    return bank[k_center_greedy(bank @ projection.T, count, start)]


def squared_distances(queries: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``(n, m)`` by |q|^2 - 2 q.b + |b|^2 (one matrix product), clamped at 0."""
    product = queries @ bank.T
    return (queries.pow(2).sum(1, keepdim=True) - 2 * product + bank.pow(2).sum(1)).clamp_min(0)


def nearest(queries: torch.Tensor, bank: torch.Tensor, count: int = 1) -> torch.Tensor:
    """Indices ``(n, count)`` of each query's nearest bank rows, closest first, searched in query chunks.

    The matrix-product distances lose digits where |q|^2 is large next to |q - b|^2 (anomalib's maps move by up
    to 2e-3 of their peak from it on bottle), so the best few candidates are ranked again by |q - b| itself.
    """
    import torch

    chunks = []
    for start in range(0, queries.shape[0], QUERY_CHUNK):
        chunk = queries[start:start + QUERY_CHUNK]
        candidates = squared_distances(chunk, bank).topk(min(max(count, CANDIDATES), bank.shape[0]), dim=1,
                                                         largest=False).indices
        exact = torch.linalg.vector_norm(chunk.unsqueeze(1) - bank[candidates], dim=2)
        chunks.append(candidates.gather(1, exact.topk(count, dim=1, largest=False).indices))
    return torch.cat(chunks)


def patch_scores(queries: torch.Tensor, bank: torch.Tensor, num_neighbors: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Image scores ``(B,)`` and patch distances ``(B, N)`` of query patches ``(B, N, C)``, differentiable.

    Which bank row is nearest, which patch is farthest and which rows neighbour its match are found without
    gradient; the distances are then recomputed from the queries, which is the gradient of the min/max almost
    everywhere. The image score is the largest patch distance s, times 1 - softmax(d)[0] where d are that
    patch's distances to the ``num_neighbors`` bank rows nearest its match (the match itself first).
    """
    import torch

    batch, patches, channels = queries.shape
    flat = queries.reshape(-1, channels)
    with torch.no_grad():
        matches = nearest(flat.detach(), bank)[:, 0]
    distances = torch.linalg.vector_norm(flat - bank[matches], dim=1).reshape(batch, patches)
    worst = distances.detach().argmax(dim=1)
    rows = torch.arange(batch, device=queries.device)
    score = distances[rows, worst]
    if num_neighbors == 1:
        return score, distances
    with torch.no_grad():
        match = matches.reshape(batch, patches)[rows, worst]
        support = nearest(bank[match], bank, min(num_neighbors, bank.shape[0]))  # (B, k): the match first
    support_distances = torch.linalg.vector_norm(queries[rows, worst].unsqueeze(1) - bank[support], dim=2)
    weight = 1 - torch.softmax(support_distances, dim=1)[:, 0]
    return weight * score, distances


def local_features(maps: list[torch.Tensor]) -> torch.Tensor:
    """Patch features ``(B, h, w, C)``: every map 3x3 average-pooled, resized to the first's grid, concatenated."""
    import torch
    import torch.nn.functional as F

    pooled = [F.avg_pool2d(feature_map, kernel_size=3, stride=1, padding=1) for feature_map in maps]
    grid = pooled[0].shape[-2:]
    aligned = [pooled[0]] + [F.interpolate(m, size=grid, mode="bilinear", align_corners=False) for m in pooled[1:]]
    return torch.cat(aligned, dim=1).permute(0, 2, 3, 1)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """The normalised 1-D Gaussian of anomalib's ``GaussianBlur2d``: 2 * int(4 sigma + 0.5) + 1 taps."""
    radius = int(4.0 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-offsets**2 / (2 * sigma**2))
    return kernel / kernel.sum()


def parse_layers(text: str) -> tuple[str, ...]:
    """``"layer2,layer3"`` -> ``("layer2", "layer3")``; a one-line error for an empty or repeated name."""
    names = tuple(name.strip() for name in str(text).split(","))
    if not all(names) or len(set(names)) != len(names):
        raise RobustadError(f"patchcore: layers={text!r}; expected distinct comma-separated layer names, "
                            "e.g. layer2,layer3")
    return names


class PatchCore:
    """Nearest-neighbour Euclidean distance of pooled CNN patch features to a k-center coreset of reference
    patches; image score = the reweighted largest patch distance."""

    name = "patchcore"
    description = ("PatchCore (CVPR 2022) as anomalib 2.7.0: pooled CNN stages, k-center coreset, reweighted "
                   "max patch distance")
    memory_bank_size: int

    def __init__(self, backbone: torch.nn.Module, resolution: int, seed: int = 0, *, layers: str = "layer2,layer3",
                 coreset_ratio: float = 0.1, num_neighbors: int = 9, batch_size: int = 8) -> None:
        self.layers = check_layers(backbone, parse_layers(layers), "patchcore")
        self.coreset_ratio = options.fraction("patchcore", "coreset_ratio", coreset_ratio)
        self.num_neighbors = options.integer("patchcore", "num_neighbors", num_neighbors, 1)
        self.batch_size = options.integer("patchcore", "batch_size", batch_size, 1)
        check_resolution(resolution, backbone, "patchcore")
        self.backbone = backbone
        self.resolution = resolution
        self.seed = int(seed)
        self.memory_bank_size = 0
        self._bank: torch.Tensor | None = None  # (M, C) on the backbone's device

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """(3, res, res) in [0, 1]: the 8-bit RGB image as floats, resized by torchvision (bilinear, antialiased),
        clamped to [0, 1], which the rounding of the filter weights leaves by up to 5e-7 (attacks refuse that)."""
        import torch
        from torchvision.transforms.v2 import functional as TF

        pixels = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).float().div(255)
        size = [self.resolution, self.resolution]
        return TF.resize(pixels, size, interpolation=TF.InterpolationMode.BILINEAR, antialias=True).clamp(0, 1)

    def fit(self, reference: list[Image.Image]) -> None:
        """Memory bank: every reference patch, thinned to the k-center coreset unless coreset_ratio is 1."""
        import torch

        if not reference:
            raise RobustadError("patchcore: fit needs at least one reference image, got none")
        images = [self.preprocess(image) for image in reference]
        device = device_of(self.backbone)
        chunks = []
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                batch = torch.stack(images[start:start + self.batch_size]).to(device)
                embedded = self.embed(self.backbone(batch, layers=self.layers))
                chunks.append(embedded.reshape(-1, embedded.shape[-1]))
            bank = torch.cat(chunks)
            if self.coreset_ratio < 1:  # random draws on the CPU, the search where the bank is
                bank = coreset(bank, self.coreset_ratio, torch.Generator().manual_seed(self.seed))
        self._bank, self.memory_bank_size = bank, bank.shape[0]

    def embed(self, features: Features) -> torch.Tensor:
        """PatchCore's patch features ``(B, h, w, C)`` from the backbone layers of ``features``."""
        missing = [name for name in self.layers if name not in features.layers]
        if missing:
            raise RobustadError(f"patchcore: features lack layer {missing[0]!r}; call the backbone with "
                                f"layers={list(self.layers)}")
        return local_features([features.layers[name] for name in self.layers])

    def score(self, features: Features) -> DetectorOutput:
        """Image scores and patch distances ``(B, h, w)`` of a batch, without gradient."""
        import torch

        with torch.no_grad():
            scores, distances = self._scores(features)
        return DetectorOutput(scores=scores.double().cpu().numpy(),
                              patch_distances=distances.float().cpu().numpy(), masks=None)

    def score_tensor(self, features: Features, masks: object = None) -> torch.Tensor:
        """Differentiable image scores ``(B,)``, the same values as ``score``; PatchCore has no masks to hold."""
        return self._scores(features)[0]

    def anomaly_map(self, patch_distances: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Pixel map ``(H, W)`` float32 of the original image: anomalib's map at the model input (nearest upsampling
        of the patch grid to resolution x resolution, then a Gaussian blur with sigma 4, 33 taps, reflect border),
        resized bilinearly to the image."""
        import torch
        import torch.nn.functional as F

        grid = torch.as_tensor(np.asarray(patch_distances, dtype=np.float32))
        if grid.ndim != 2:
            raise RobustadError(f"patchcore: patch_distances of shape {tuple(grid.shape)}; expected a (h, w) grid")
        height, width = (int(side) for side in size)
        if height < 1 or width < 1:
            raise RobustadError(f"patchcore: map size {tuple(size)}; expected positive (height, width)")
        kernel = torch.as_tensor(gaussian_kernel(MAP_SIGMA), dtype=torch.float32)
        radius = len(kernel) // 2
        if self.resolution <= radius:
            raise RobustadError(f"patchcore: resolution {self.resolution} is too small for the sigma-4 map blur "
                                f"(needs more than {radius} pixels)")
        upsampled = F.interpolate(grid[None, None], size=(self.resolution, self.resolution), mode="nearest")
        padded = F.pad(upsampled, (radius, radius, radius, radius), mode="reflect")
        blurred = F.conv2d(F.conv2d(padded, kernel.view(1, 1, -1, 1)), kernel.view(1, 1, 1, -1))
        if (height, width) != (self.resolution, self.resolution):
            blurred = F.interpolate(blurred, size=(height, width), mode="bilinear", align_corners=False,
                                    antialias=True)
        return blurred[0, 0].numpy()

    def _scores(self, features: Features) -> tuple[torch.Tensor, torch.Tensor]:
        if self._bank is None:
            raise RobustadError("patchcore: no memory bank; call fit(reference images) before scoring")
        embedded = self.embed(features)
        batch, height, width, channels = embedded.shape
        if channels != self._bank.shape[1]:
            raise RobustadError(f"patchcore: features have {channels} channels; the memory bank has "
                                f"{self._bank.shape[1]} (same backbone and layers for fit and score)")
        bank = self._bank.to(device=embedded.device, dtype=embedded.dtype)
        scores, distances = patch_scores(embedded.reshape(batch, -1, channels), bank, self.num_neighbors)
        return scores, distances.reshape(batch, height, width)


@hookimpl
def register_detectors(register):
    register(PatchCore)
