"""PatchCore: coreset, nearest distances, reweighting, map and gradient against independent computations."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from robustad_plugins.patchcore import (
    PatchCore,
    johnson_lindenstrauss_dim,
    k_center_greedy,
    local_features,
    patch_scores,
    sparse_random_projection,
)
from scipy.ndimage import gaussian_filter, uniform_filter
from sklearn.random_projection import johnson_lindenstrauss_min_dim

from robustad.declaration import Request
from robustad.engine.executors import run_local
from robustad.engine.progress import SilentReporter
from robustad.engine.request import build_cells
from robustad.engine.settings import RunSettings
from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.plugins import PluginRegistry, get_registry
from robustad.records import Features


class StagesBackbone(torch.nn.Module):
    """A tiny random CNN with two named stages (stride 2: 6 channels, stride 4: 5 channels), patch size 2."""

    name = "tiny_stages"
    description = "tiny random two-stage CNN for tests"
    patch_size = 2
    weights_id = "random-tiny-stages"
    layer_names = ("layer2", "layer3")

    def __init__(self, dtype: torch.dtype = torch.float32, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.first = torch.nn.Conv2d(3, 6, kernel_size=2, stride=2, dtype=dtype)
        self.second = torch.nn.Conv2d(6, 5, kernel_size=2, stride=2, dtype=dtype)
        with torch.no_grad():
            for conv in (self.first, self.second):
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator, dtype=dtype))
                conv.bias.copy_(0.1 * torch.randn(conv.bias.shape, generator=generator, dtype=dtype))
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor, layers=()) -> Features:
        first = torch.tanh(self.first(x.to(self.first.weight.dtype)))
        second = torch.tanh(self.second(first))
        maps = {"layer2": first, "layer3": second}
        return Features(patch_tokens=first.permute(0, 2, 3, 1), global_token=second.mean(dim=(2, 3)),
                        layers={name: maps[name] for name in layers})


class RegisteredStages(StagesBackbone):
    """The tiny two-stage CNN as a backbone plugin (weights and device come from the engine)."""

    def __init__(self, *, weights: str | None = None, device: str = "cpu") -> None:
        super().__init__()


class StagesPlugin:
    @hookimpl
    def register_backbones(self, register):
        register(RegisteredStages)


def photos(count: int, size: int = 24, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(count)]


def brute_force_k_center(points: np.ndarray, count: int, start: int) -> list[int]:
    """Greedy k-center, every step recomputing each point's distance to every chosen centre."""
    chosen = [start]
    while len(chosen) < count:
        gaps = np.linalg.norm(points[:, None, :] - points[None, chosen, :], axis=2).min(axis=1)
        chosen.append(int(np.argmax(gaps)))
    return chosen


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_k_center_matches_brute_force_greedy(seed):
    points = np.random.default_rng(seed).normal(size=(80, 5))
    assert k_center_greedy(torch.from_numpy(points), 17, start=seed) == brute_force_k_center(points, 17, seed)


@pytest.mark.parametrize("n_samples", [10, 1000, 12544])
def test_projection_has_the_johnson_lindenstrauss_size_and_sparse_signed_entries(n_samples):
    assert johnson_lindenstrauss_dim(n_samples) == johnson_lindenstrauss_min_dim(n_samples, eps=0.9)
    features = 400
    matrix = sparse_random_projection(n_samples, features, torch.Generator().manual_seed(0)).numpy()
    components = johnson_lindenstrauss_min_dim(n_samples, eps=0.9)
    assert matrix.shape == (components, features)
    scale = math.sqrt(math.sqrt(features)) / math.sqrt(components)  # sqrt(1/density) / sqrt(n_components)
    values = set(np.unique(np.round(matrix / scale, 6)))
    assert values <= {-1.0, 0.0, 1.0}
    nonzero = (matrix != 0).mean()
    assert abs(nonzero - 1 / math.sqrt(features)) < 4 * math.sqrt(0.05 / matrix.size)  # 4 sigma of a Binomial


def test_reweighting_follows_the_paper_by_hand():
    bank = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    queries = torch.tensor([[[0.0, 0.5], [4.0, 0.0]]])  # distances 0.5 and 2: the second patch is the image's worst
    # its match (2, 0) has bank neighbours (2, 0), (0, 0), (0, 3); the worst patch lies 2, 4 and 5 from them
    # the paper's weight: 1 - exp(|q - m*|) / sum over the neighbours m of exp(|q - m|)
    by_hand = {1: 2.0,
               2: 2.0 * (1 - math.exp(2) / (math.exp(2) + math.exp(4))),
               3: 2.0 * (1 - math.exp(2) / (math.exp(2) + math.exp(4) + math.exp(5)))}
    for neighbours, expected in by_hand.items():
        score, distances = patch_scores(queries, bank, neighbours)
        assert score.item() == pytest.approx(expected, rel=1e-6)
        assert distances.numpy() == pytest.approx(np.array([[0.5, 2.0]]))
    assert patch_scores(queries, bank, 9)[0].item() == pytest.approx(by_hand[3], rel=1e-6)  # at most the bank


def test_patch_distances_are_exact_nearest_distances():
    rng = np.random.default_rng(3)
    bank, queries = rng.normal(size=(300, 7)), rng.normal(size=(2, 1500, 7))
    scores, distances = patch_scores(torch.from_numpy(queries), torch.from_numpy(bank), 1)
    brute = np.linalg.norm(queries[:, :, None, :] - bank[None, None], axis=3).min(axis=2)
    assert distances.numpy() == pytest.approx(brute, rel=1e-9)
    assert scores.numpy() == pytest.approx(brute.max(axis=1), rel=1e-9)


def test_nearest_distances_stay_exact_in_float32_when_features_are_far_from_the_origin():
    rng = np.random.default_rng(4)
    bank = 300 + rng.normal(size=(400, 64))  # |b|^2 ~ 6e6: the matrix-product distances alone lose every digit
    queries = bank[rng.integers(0, 400, 2000)] + 0.05 * rng.normal(size=(2000, 64))
    brute = np.linalg.norm(queries[:, None, :] - bank[None], axis=2).min(axis=1)
    _, distances = patch_scores(torch.tensor(queries[None], dtype=torch.float32),
                                torch.tensor(bank, dtype=torch.float32), 1)
    assert distances.numpy()[0] == pytest.approx(brute, abs=1e-3 * brute.max())


def test_features_are_pooled_resized_and_concatenated():
    rng = np.random.default_rng(4)
    fine, coarse = rng.normal(size=(1, 3, 8, 6)), rng.normal(size=(1, 2, 4, 3))
    embedded = local_features([torch.from_numpy(fine), torch.from_numpy(coarse)]).numpy()[0]
    # 3x3 mean with zero padding (the padding counts), then OpenCV's half-pixel bilinear resize to 8x6
    pooled = [uniform_filter(m[0], size=(1, 3, 3), mode="constant") for m in (fine, coarse)]
    upsampled = np.stack([cv2.resize(channel, (6, 8), interpolation=cv2.INTER_LINEAR) for channel in pooled[1]])
    expected = np.concatenate([pooled[0], upsampled]).transpose(1, 2, 0)
    assert embedded == pytest.approx(expected, abs=1e-9)


def test_anomaly_map_is_nearest_upsampling_then_a_sigma_4_blur():
    backbone = StagesBackbone()
    detector = PatchCore(backbone, 48)
    grid = np.random.default_rng(5).random((12, 12)).astype(np.float32)
    upsampled = np.repeat(np.repeat(grid.astype(np.float64), 4, axis=0), 4, axis=1)
    expected = gaussian_filter(upsampled, sigma=4, mode="mirror", truncate=4.0)  # mirror: torch's reflect
    assert detector.anomaly_map(grid, (48, 48)) == pytest.approx(expected, abs=1e-6)
    resized = detector.anomaly_map(grid, (96, 72))
    assert resized.shape == (96, 72) and resized.dtype == np.float32


def test_coreset_size_and_seed():
    backbone = StagesBackbone()
    reference = photos(2)
    full = PatchCore(backbone, 24, coreset_ratio=1.0)
    full.fit(reference)
    assert full.memory_bank_size == 2 * 12 * 12
    banks = []
    for seed in (0, 0, 1):
        detector = PatchCore(backbone, 24, seed=seed, coreset_ratio=0.25)
        detector.fit(reference)
        assert detector.memory_bank_size == int(2 * 12 * 12 * 0.25)
        banks.append(detector._bank)
    assert torch.equal(banks[0], banks[1]) and not torch.equal(banks[0], banks[2])


def fitted(dtype: torch.dtype = torch.float32, **options) -> tuple[StagesBackbone, PatchCore]:
    backbone = StagesBackbone(dtype=dtype)
    detector = PatchCore(backbone, 24, **options)
    detector.fit(photos(2))
    return backbone, detector


def test_score_tensor_equals_score():
    backbone, detector = fitted(coreset_ratio=0.5)
    images = torch.stack([detector.preprocess(image) for image in photos(3, seed=9)])
    features = backbone(images, layers=detector.layers)
    output = detector.score(features)
    assert output.patch_distances.shape == (3, 12, 12) and output.masks is None
    assert detector.score_tensor(features).detach().numpy() == pytest.approx(output.scores, rel=1e-6)


def test_score_gradient_passes_gradcheck_in_double():
    backbone, detector = fitted(torch.float64, coreset_ratio=0.5)
    images = torch.rand(2, 3, 24, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    images.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: detector.score_tensor(backbone(x, layers=detector.layers)),
                                    (images,), eps=1e-6, atol=1e-5, fast_mode=True)


@pytest.mark.parametrize("value", [0, 255])
def test_preprocess_resizes_to_a_square_inside_the_unit_range(value):
    detector = PatchCore(StagesBackbone(), 224)
    flat = Image.new("RGB", (900, 600), (value,) * 3)  # the antialias weights' rounding leaves [0, 1] by 2e-7 here
    pixels = detector.preprocess(flat)
    assert pixels.shape == (3, 224, 224) and 0 <= float(pixels.min()) and float(pixels.max()) <= 1
    assert torch.allclose(pixels, torch.full_like(pixels, value / 255), atol=1e-6, rtol=0)


@pytest.mark.parametrize("options, message", [
    (dict(layers="layer4"), "backbone tiny_stages has no layer 'layer4'; its named layers: layer2, layer3"),
    (dict(layers="layer2,,layer3"), "layers='layer2,,layer3'"),
    (dict(coreset_ratio=0.0), "coreset_ratio=0.0"),
    (dict(coreset_ratio=1.5), "coreset_ratio=1.5"),
    (dict(num_neighbors=0), "num_neighbors=0"),
    (dict(resolution=25), "resolution=25"),
])
def test_bad_options_are_one_line_errors(options, message):
    resolution = options.pop("resolution", 24)
    with pytest.raises(RobustadError, match="^patchcore[: ]") as error:
        PatchCore(StagesBackbone(), resolution, **options)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_too_small_coreset_and_unfitted_scores_are_one_line_errors():
    with pytest.raises(RobustadError, match="coreset_ratio=0.001 keeps no patch of 144"):
        PatchCore(StagesBackbone(), 24, coreset_ratio=0.001).fit(photos(1))
    with pytest.raises(RobustadError, match="call fit"):
        PatchCore(StagesBackbone(), 24).score(Features(torch.zeros(1, 2, 2, 6), torch.zeros(1, 5)))


def test_engine_gives_patchcore_its_seed_and_layers_and_attacks_it_white_box(tmp_path):
    registry: PluginRegistry = get_registry()
    if not registry.pm.has_plugin("tiny_stages"):
        registry.add(StagesPlugin(), "tiny_stages")
    request = Request(noise_control=False, dataset="demo", data_root=None, category="weave", shots="1", seeds="1",
                      backbone="tiny_stages", weights="", resolution="32", detector="patchcore",
                      surrogate="score", attack="pgd", eps="8/255", calib="platt",
                      calib_fraction=0.3, options=["detector.patchcore.coreset_ratio=0.5"])
    cells = build_cells(request, registry)
    seen = []
    original = PatchCore.fit

    def spy(self, reference):
        seen.append((self.seed, self.backbone.layers))
        original(self, reference)

    PatchCore.fit = spy
    try:
        result = run_local(cells, RunSettings(pixel_metrics=False), tmp_path / "board.csv", registry,
                           SilentReporter(), lambda cell, row: None)
    finally:
        PatchCore.fit = original
    assert seen == [(1, ("layer2", "layer3"))]
    [row] = result.written
    assert row["memory_bank_size"] == int(16 * 16 * 0.5)
    assert row["white_box"] is True and row["zero_grad_share"] < 0.5
    assert row["adv_auroc"] < row["clean_auroc"]

