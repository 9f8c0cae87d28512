"""SubspaceAD: PCA residuals against numpy's SVD, the map and image score against OpenCV, views, layers, gradient."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from robustad_plugins.subspacead import SubspaceAD, auto_layers, fit_subspace, residuals, rotation_angles

from robustad.declaration import Request
from robustad.engine.executors import run_local
from robustad.engine.progress import SilentReporter
from robustad.engine.request import build_cells
from robustad.engine.settings import RunSettings
from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.plugins import PluginRegistry, get_registry
from robustad.records import Features


class BlocksBackbone(torch.nn.Module):
    """A tiny random 'ViT': a stride-4 patch embedding, then ``depth`` residual tanh blocks named blocks.<i>."""

    name = "tiny_blocks"
    description = "tiny random block stack for tests"
    patch_size = 4
    weights_id = "random-tiny-blocks"

    def __init__(self, depth: int = 12, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.embed = torch.nn.Conv2d(3, 8, kernel_size=4, stride=4, dtype=dtype)
        self.blocks = torch.nn.ModuleList(torch.nn.Linear(8, 8, dtype=dtype) for _ in range(depth))
        with torch.no_grad():
            for module in (self.embed, *self.blocks):
                module.weight.copy_(0.5 * torch.randn(module.weight.shape, generator=generator, dtype=dtype))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator, dtype=dtype))
        self.layer_names = tuple(f"blocks.{index}" for index in range(depth))
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor, layers=()) -> Features:
        tokens = self.embed(x.to(self.embed.weight.dtype)).permute(0, 2, 3, 1)
        outputs = {}
        for name, block in zip(self.layer_names, self.blocks):
            tokens = tokens + torch.tanh(block(tokens))
            outputs[name] = tokens.permute(0, 3, 1, 2)
        return Features(patch_tokens=tokens, global_token=tokens.mean(dim=(1, 2)),
                        layers={name: outputs[name] for name in layers})


class RegisteredBlocks(BlocksBackbone):
    def __init__(self, *, weights: str | None = None, device: str = "cpu") -> None:
        super().__init__()


class BlocksPlugin:
    @hookimpl
    def register_backbones(self, register):
        register(RegisteredBlocks)


def photos(count: int, size: int = 40, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(count)]


def numpy_pca_residuals(train: np.ndarray, test: np.ndarray, explained: float) -> tuple[np.ndarray, int]:
    """Squared residuals of ``test`` rows off the PCA subspace of ``train`` (numpy SVD), and its dimension."""
    mean = train.mean(axis=0)
    _, singular, rows = np.linalg.svd(train - mean, full_matrices=False)
    variances = singular**2 / (len(train) - 1)
    share = np.cumsum(variances) / variances.sum()
    count = int(np.argmax(share >= explained)) + 1
    basis = rows[:count].T
    centred = test - mean
    return ((centred - centred @ basis @ basis.T) ** 2).sum(axis=1), count


@pytest.mark.parametrize("explained", [0.5, 0.9, 0.99])
def test_residuals_match_numpy_svd_pca(explained):
    rng = np.random.default_rng(0)
    train = rng.normal(size=(500, 12)) * np.geomspace(5, 0.1, 12) + 3
    test = rng.normal(size=(40, 12)) * 2 + 3
    expected, count = numpy_pca_residuals(train, test, explained)
    mean, directions = fit_subspace(torch.from_numpy(train).float(), explained)
    assert directions.shape == (12, count) and directions.dtype == torch.float64
    assert residuals(torch.from_numpy(test), mean, directions).numpy() == pytest.approx(expected, rel=1e-6)


def opencv_map(grid: np.ndarray, resolution: int) -> np.ndarray:
    """The authors' post-processing: OpenCV bilinear resize to the input size, then GaussianBlur((3, 3), 4)."""
    resized = cv2.resize(grid.astype(np.float32), (resolution, resolution), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(resized, (3, 3), 4)


def fitted(dtype: torch.dtype = torch.float32, **options) -> tuple[BlocksBackbone, SubspaceAD]:
    backbone = BlocksBackbone(dtype=dtype)
    detector = SubspaceAD(backbone, 32, augmentations=3, **options)
    detector.fit(photos(2))
    return backbone, detector


def test_scores_are_the_top_percent_mean_of_the_opencv_map_of_numpy_residuals():
    backbone, detector = fitted()
    reference = torch.stack([detector.preprocess(v) for image in photos(2) for v in detector.views(image)])
    train = backbone(reference, layers=detector.layers)
    train_tokens = np.mean([train.layers[name].permute(0, 2, 3, 1).numpy() for name in ("blocks.7", "blocks.8")],
                           axis=0).reshape(-1, 8)
    images = torch.stack([detector.preprocess(image) for image in photos(3, seed=5)])
    features = backbone(images, layers=detector.layers)
    test_tokens = np.mean([features.layers[name].permute(0, 2, 3, 1).numpy() for name in ("blocks.7", "blocks.8")],
                          axis=0)
    expected, count = numpy_pca_residuals(train_tokens.astype(np.float64), test_tokens.reshape(-1, 8), 0.99)
    output = detector.score(features)
    assert detector.memory_bank_size == count
    assert output.patch_distances == pytest.approx(expected.reshape(3, 8, 8), rel=1e-4)
    for grid, score in zip(output.patch_distances, output.scores):
        pixels = np.sort(opencv_map(grid, 32).ravel())
        assert score == pytest.approx(pixels[-max(1, int(0.01 * pixels.size)):].mean(), rel=1e-5)
        assert detector.anomaly_map(grid, (32, 32)) == pytest.approx(opencv_map(grid, 32), rel=1e-5, abs=1e-6)
    assert detector.score_tensor(features).numpy() == pytest.approx(output.scores, rel=1e-12)
    assert detector.anomaly_map(output.patch_distances[0], (50, 70)).shape == (50, 70)


def test_views_are_seeded_nearest_rotations_with_black_corners():
    backbone = BlocksBackbone()
    image = photos(1)[0]
    angles = rotation_angles(4, seed=3)
    assert angles == rotation_angles(4, seed=3) != rotation_angles(4, seed=4)
    assert all(0.0 <= angle <= 345.0 for angle in angles)
    views = SubspaceAD(backbone, 32, seed=3, augmentations=4).views(image)
    assert len(views) == 5 and np.array_equal(np.array(views[0]), np.array(image))
    for view, angle in zip(views[1:], angles):
        expected = image.rotate(angle, resample=Image.Resampling.NEAREST, fillcolor=(0, 0, 0))
        assert np.array_equal(np.array(view), np.array(expected))
    assert len(SubspaceAD(backbone, 32, category="transistor").views(image)) == 1  # the authors' exception


def test_auto_layers_follow_the_authors_depth_table():
    assert auto_layers(BlocksBackbone(12)) == ("blocks.7", "blocks.8")
    assert auto_layers(BlocksBackbone(24)) == tuple(f"blocks.{i}" for i in range(13, 18))

    class Cnn:
        name, layer_names = "cnn", ("layer1", "layer2")

    assert auto_layers(Cnn()) == ()  # a CNN: the backbone's own patch tokens
    with pytest.raises(RobustadError, match="^subspacead: layers=auto knows ViTs of 12, 24, 40 blocks"):
        auto_layers(BlocksBackbone(7))


def test_score_gradient_passes_gradcheck_in_double():
    backbone, detector = fitted(torch.float64)
    images = torch.rand(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    images.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: detector.score_tensor(backbone(x, layers=detector.layers)),
                                    (images,), eps=1e-6, atol=1e-5, fast_mode=True)


@pytest.mark.parametrize("options, message", [
    (dict(layers="blocks.99"), "backbone tiny_blocks has no layer 'blocks.99'"),
    (dict(layers=","), "layers=','"),
    (dict(explained_variance=0.0), "explained_variance=0.0"),
    (dict(augmentations=-1), "augmentations=-1"),
    (dict(resolution=30), "resolution=30"),
])
def test_bad_options_are_one_line_errors(options, message):
    resolution = options.pop("resolution", 32)
    with pytest.raises(RobustadError, match="^subspacead[: ]") as error:
        SubspaceAD(BlocksBackbone(), resolution, **options)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("surrogate", ["score", "linear"])
def test_engine_attacks_subspacead_through_either_surrogate(tmp_path, surrogate):
    registry: PluginRegistry = get_registry()
    if not registry.pm.has_plugin("tiny_blocks"):
        registry.add(BlocksPlugin(), "tiny_blocks")
    request = Request(noise_control=False, dataset="demo", data_root=None, category="weave", shots="1", seeds="0",
                      backbone="tiny_blocks", weights="", resolution="32", detector="subspacead",
                      surrogate=surrogate, attack="fgsm", eps="8/255", calib="platt",
                      calib_fraction=0.3, options=["detector.subspacead.augmentations=2"])
    result = run_local(build_cells(request, registry), RunSettings(pixel_metrics=False), tmp_path / "board.csv",
                       registry, SilentReporter(), lambda cell, row: None)
    [row] = result.written
    assert row["white_box"] is (surrogate == "score")
    assert 0 < row["memory_bank_size"] <= 8 and row["zero_grad_share"] < 0.5
    assert 0.0 <= row["adv_auroc"] <= 1.0
