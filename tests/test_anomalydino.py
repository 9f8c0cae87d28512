"""The anomalydino detector (docs/protocol.md section 3), checked against independent computations."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import robustad_plugins.anomalydino as anomalydino
import torch
import torch.nn.functional as F
from PIL import Image
from robustad_plugins.anomalydino import (
    AnomalyDINO,
    dilate_and_close,
    foreground_mask,
    mask_from_projection,
    mean_top_percent,
    rotated_views,
)
from scipy.ndimage import gaussian_filter, map_coordinates
from sklearn.metrics import roc_auc_score

from robustad.errors import RobustadError
from robustad.plugins import get_registry
from robustad.records import Features
from tests.conftest import LoudBackbone


def random_images(count: int, height: int, width: int, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)) for _ in range(count)]


def normalised(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


class CheckerBackbone(torch.nn.Module):
    """Patch tokens alternate e1 / e2 (4 channels) in a checkerboard, whatever the image: a bank of exactly {e1, e2}."""

    patch_size = 4
    weights_id = "checker"

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the module a device

    def forward(self, x: torch.Tensor) -> Features:
        rows, cols = x.shape[2] // 4, x.shape[3] // 4
        parity = (torch.arange(rows)[:, None] + torch.arange(cols)[None, :]) % 2
        tokens = torch.eye(4)[parity].expand(x.shape[0], rows, cols, 4)
        return Features(patch_tokens=tokens + 0 * self.anchor, global_token=tokens.mean(dim=(1, 2)))


def checker_detector(**options) -> AnomalyDINO:
    detector = AnomalyDINO(CheckerBackbone(), 8, "bottle", augment="none", **options)
    detector.fit(random_images(1, 8, 8, seed=0))
    return detector


def test_registered_with_its_options():
    component = get_registry().get("detector", "anomalydino")
    assert component.cls is AnomalyDINO
    assert {o.name: o.default for o in component.options} == {"masking": "auto", "mask_morphology": "raster",
                                                              "augment": "agnostic", "batch_size": 8}


def test_importing_the_plugin_imports_no_heavy_library():
    """``robustad plugins`` imports every plugin module: torch, faiss, sklearn, scipy and cv2 wait until used."""
    code = ("import sys, robustad_plugins.anomalydino; "
            "print(sorted({'torch', 'faiss', 'sklearn', 'scipy', 'cv2'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("options, bad", [({"masking": "maybe"}, "masking='maybe'"),
                                          ({"mask_morphology": "diagonal"}, "mask_morphology='diagonal'"),
                                          ({"augment": "flip"}, "augment='flip'"),
                                          ({"batch_size": 0}, "batch_size=0")])
def test_bad_options_are_one_line_errors(tiny_backbone, options, bad):
    with pytest.raises(RobustadError, match=bad) as error:
        AnomalyDINO(tiny_backbone, 16, "bottle", **options)
    assert "\n" not in str(error.value)


def test_bad_calls_are_one_line_errors(tiny_backbone):
    detector = AnomalyDINO(tiny_backbone, 16, "bottle")
    with pytest.raises(RobustadError, match="resolution=2"):
        AnomalyDINO(tiny_backbone, 2, "bottle")
    with pytest.raises(RobustadError, match="call fit"):
        detector.score(tiny_backbone(torch.zeros(1, 3, 16, 16)))
    with pytest.raises(RobustadError, match="at least one reference"):
        detector.fit([])
    detector.fit(random_images(1, 16, 16, seed=0))
    features = tiny_backbone(torch.zeros(2, 3, 16, 16))
    with pytest.raises(RobustadError, match=r"masks of shape \(2, 3, 4\)"):
        detector.score_tensor(features, torch.ones(2, 3, 4, dtype=torch.bool))
    with pytest.raises(RobustadError, match="patch_distances of shape"):
        detector.anomaly_map(np.zeros((2, 3, 4)), (8, 8))


@pytest.mark.parametrize("category, masking, expected", [
    ("bottle", "auto", False), ("capsule", "auto", True), ("toothbrush", "auto", True), ("pcb1", "auto", True),
    ("pipe_fryum", "auto", True), ("capsule", "off", False), ("bottle", "on", True)])
def test_masking_preset(tiny_backbone, category, masking, expected):
    assert AnomalyDINO(tiny_backbone, 16, category, masking=masking).uses_masking is expected


@pytest.mark.parametrize("size, resolution, resized, cropped", [
    ((30, 21), 10, (14, 10), (8, 12)),  # landscape: width = int(10 * 30 / 21) = 14
    ((21, 45), 13, (13, 27), (24, 12)),  # portrait: height = int(13 * 45 / 21) = int(27.86) = 27
    ((17, 17), 9, (9, 9), (8, 8)),
])
def test_preprocess_is_pil_bicubic_shorter_edge_and_top_left_crop(tiny_backbone, size, resolution, resized, cropped):
    image = random_images(1, size[1], size[0], seed=1)[0]
    tensor = AnomalyDINO(tiny_backbone, resolution, "bottle").preprocess(image)
    expected = np.asarray(image.resize(resized, Image.Resampling.BICUBIC), dtype=np.float32) / 255
    assert tensor.shape == (3, *cropped) and tensor.dtype == torch.float32
    np.testing.assert_array_equal(tensor.permute(1, 2, 0).numpy(), expected[:cropped[0], :cropped[1]])


def test_preprocess_converts_grey_images_to_rgb(tiny_backbone):
    grey = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), mode="L")
    tensor = AnomalyDINO(tiny_backbone, 8, "bottle").preprocess(grey)
    assert tensor.shape == (3, 8, 8)
    np.testing.assert_array_equal(tensor[0].numpy(), np.arange(64, dtype=np.float32).reshape(8, 8) / np.float32(255))
    assert torch.equal(tensor[0], tensor[2])


@pytest.mark.parametrize("height, width", [(20, 20), (24, 32), (33, 21)])
def test_rotations_match_bilinear_inverse_mapping_with_mirror_border(height, width):
    """Destination pixel (x, y) samples the source at the point rotated back about (W/2, H/2); border reflect-101."""
    image = np.random.default_rng(2).integers(0, 256, (height, width, 3), dtype=np.uint8)
    views = rotated_views(Image.fromarray(image))
    assert len(views) == 8
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    cx, cy = width / 2, height / 2
    for angle, view in zip(range(0, 360, 45), views):
        theta = np.deg2rad(angle)
        source_x = cx + np.cos(theta) * (x - cx) - np.sin(theta) * (y - cy)
        source_y = cy + np.sin(theta) * (x - cx) + np.cos(theta) * (y - cy)
        expected = np.stack([map_coordinates(image[..., c].astype(np.float64), [source_y, source_x], order=1,
                                             mode="mirror") for c in range(3)], axis=-1)
        got = np.asarray(view, dtype=np.float64)
        assert view.size == (width, height)
        if angle % 90 == 0:  # samples land on pixel centres: exact
            np.testing.assert_array_equal(got, np.round(expected))
        else:  # uint8 rounding of the bilinear value
            assert np.abs(got - expected).max() <= 1.0


def test_memory_bank_size_is_shots_times_views_times_patches(tiny_backbone):
    # 28x20 -> shorter edge 16 -> 22x16 -> crop 20x16 -> 5x4 = 20 patches of 4 px
    references = random_images(2, 28, 20, seed=3)
    agnostic = AnomalyDINO(tiny_backbone, 16, "bottle", batch_size=3)
    agnostic.fit(references)
    assert agnostic.memory_bank_size == 2 * 8 * 20
    plain = AnomalyDINO(tiny_backbone, 16, "bottle", augment="none")
    plain.fit(references)
    assert plain.memory_bank_size == 2 * 20
    assert tiny_backbone.images_seen == 2 * 8 + 2  # every view forwarded once, never a test image


def test_rotated_reference_views_are_in_the_bank(tiny_backbone):
    reference = random_images(1, 24, 24, seed=4)
    quarter_turn = rotated_views(reference[0])[2]
    scores = {}
    for augment in ("agnostic", "none"):
        detector = AnomalyDINO(tiny_backbone, 24, "bottle", augment=augment)
        detector.fit(reference)
        scores[augment] = detector.score(tiny_backbone(detector.preprocess(quarter_turn)[None])).scores[0]
    assert abs(scores["agnostic"]) < 1e-6 < scores["none"]


def test_faiss_scores_equal_brute_force_numpy_cosine_knn(tiny_backbone):
    references = random_images(2, 28, 20, seed=5)
    tests = random_images(3, 100, 60, seed=6)  # 60x100 -> 48x80 -> 12x20 = 240 patches: top 1 % = 2 patches
    detector = AnomalyDINO(tiny_backbone, 48, "bottle", augment="none")
    detector.fit([image.resize((48, 67), Image.Resampling.BICUBIC) for image in references])
    features = tiny_backbone(torch.stack([detector.preprocess(image) for image in tests]))
    output = detector.score(features)

    # independent: PIL resize, forward, numpy cosine similarity against every bank row
    resized = [np.asarray(image.resize((48, 67), Image.Resampling.BICUBIC), dtype=np.float32)[:64, :48] / 255
               for image in references]
    with torch.no_grad():
        reference_tokens = tiny_backbone(torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2)).patch_tokens
    bank = normalised(reference_tokens.reshape(-1, 16).numpy().astype(np.float64))
    queries = normalised(features.patch_tokens.detach().numpy().astype(np.float64))
    distances = 1 - (queries @ bank.T).max(axis=-1)
    top_two = np.sort(distances.reshape(3, -1), axis=1)[:, -2:].mean(axis=1)

    assert output.patch_distances.shape == (3, 20, 12) and output.patch_distances.dtype == np.float32
    assert output.scores.dtype == np.float64 and output.masks is None
    np.testing.assert_allclose(output.patch_distances, distances, atol=1e-6)
    np.testing.assert_allclose(output.scores, top_two, atol=1e-6)
    assert np.all(top_two > 0.01)  # test images are not references: the comparison is not trivial


@pytest.mark.parametrize("n, expected", [(50, 49.0), (99, 98.0), (100, 99.0), (199, 198.0), (200, 198.5),
                                         (350, 348.0), (1024, (1023 + 1022 + 1021 + 1020 + 1019 + 1018
                                                               + 1017 + 1016 + 1015 + 1014) / 10)])
def test_top_one_percent_rule(n, expected):
    distances = np.random.default_rng(n).permutation(n).astype(np.float32)[None]
    assert mean_top_percent(distances)[0] == expected


def test_score_is_mean_of_top_one_percent_of_known_distances():
    detector = checker_detector()
    angles = np.full(250, 0.1)
    angles[[17, 200]] = np.arccos([0.5, 0.7])  # the two largest distances: 0.5 and 0.3
    tokens = np.zeros((1, 10, 25, 4), dtype=np.float32)
    tokens[0, ..., 0] = np.cos(angles).reshape(10, 25)
    tokens[0, ..., 2] = np.sin(angles).reshape(10, 25)
    output = detector.score(Features(torch.from_numpy(3 * tokens), torch.zeros(1, 4)))
    np.testing.assert_allclose(output.patch_distances.ravel(), 1 - np.cos(angles), atol=1e-6)
    assert output.scores[0] == pytest.approx(0.4, abs=1e-6)  # N = 250: top int(2.5) = 2 patches


def test_masked_patches_have_distance_zero_but_count_in_n():
    detector = checker_detector(masking="off")
    distances = np.full(250, 0.05)
    distances[[3, 4]] = [0.9, 0.8]  # masked out below
    distances[[17, 200]] = [0.5, 0.3]
    tokens = np.zeros((1, 10, 25, 4), dtype=np.float32)
    tokens[0, ..., 0] = (1 - distances).reshape(10, 25)
    tokens[0, ..., 2] = np.sqrt(1 - (1 - distances) ** 2).reshape(10, 25)
    keep = np.ones(250, dtype=bool)
    keep[[3, 4]] = False  # their 0.9 and 0.8 must not count
    keep[100:200] = False  # 148 kept: were N only the kept patches, top 1 % would be 1 patch (0.5), not 2
    score = detector.score_tensor(Features(torch.from_numpy(tokens), torch.zeros(1, 4)),
                                  torch.from_numpy(keep.reshape(1, 10, 25)))
    assert score.item() == pytest.approx(0.4, abs=1e-6)


@pytest.mark.parametrize("morphology", ["raster", "grid"])
def test_foreground_mask_recovers_a_central_square_and_ignores_a_far_background(morphology):
    """Tokens of a 20x20 grid: object = rows/cols 5..14 near e1 (bank), background near e2/e4 (far from the bank)."""
    rng = np.random.default_rng(7)
    theta, phi = rng.uniform(0, 0.5, (20, 20)), rng.uniform(0.3, 1.0, (20, 20))
    tokens = np.zeros((1, 20, 20, 4), dtype=np.float32)
    obj = np.zeros((20, 20), dtype=bool)
    obj[5:15, 5:15] = True
    tokens[0, ..., 0] = np.where(obj, np.cos(theta), 0)
    tokens[0, ..., 2] = np.where(obj, np.sin(theta), 0)
    tokens[0, ..., 1] = np.where(obj, 0, np.cos(phi))
    tokens[0, ..., 3] = np.where(obj, 0, np.sin(phi))
    tokens *= 30
    expected_mask = np.zeros((20, 20), dtype=bool)
    if morphology == "raster":  # each object row grows by one patch left and right; the 8-patch gaps stay open
        expected_mask[5:15, 4:16] = True
    else:  # the square dilated by one patch in 2-D; closing adds nothing
        expected_mask[4:16, 4:16] = True

    np.testing.assert_array_equal(foreground_mask(tokens[0], morphology), expected_mask)
    detector = checker_detector(masking="on", mask_morphology=morphology)
    output = detector.score(Features(torch.from_numpy(tokens), torch.zeros(1, 4)))
    bank = np.eye(4)[:2]  # e1 and e2
    distances = np.where(expected_mask, 1 - (normalised(tokens[0].astype(np.float64)) @ bank.T).max(-1), 0)
    np.testing.assert_array_equal(output.masks[0], expected_mask)
    np.testing.assert_allclose(output.patch_distances[0], distances, atol=1e-6)
    assert output.scores[0] == pytest.approx(np.sort(distances.ravel())[-4:].mean(), abs=1e-6)  # N = 400: top 4


@pytest.mark.parametrize("morphology", ["raster", "grid"])
def test_mask_sign_flips_when_the_centre_is_not_kept(morphology):
    centre_negative = np.zeros((10, 10))
    centre_negative[3:7, 3:7] = -20  # "> 10" keeps nothing in the centre -> flip to "< -10"
    expected = np.zeros((10, 10), dtype=bool)
    if morphology == "raster":  # rows 3..6 grow one patch left and right; the 4-patch gaps between them stay open
        expected[3:7, 2:8] = True
    else:
        expected[2:8, 2:8] = True
    np.testing.assert_array_equal(mask_from_projection(centre_negative, morphology), expected)


@pytest.mark.parametrize("morphology", ["raster", "grid"])
@pytest.mark.parametrize("kept_in_centre, flipped", [(12, True), (13, False)])
def test_mask_sign_flip_threshold_is_35_percent_of_the_centre(kept_in_centre, flipped, morphology):
    """Centre of a 10x10 grid = rows/cols 2..7 (36 patches); 35 % of 36 = 12.6."""
    projection = np.zeros((10, 10))
    centre = [(r, c) for r in range(2, 8) for c in range(2, 8)][:kept_in_centre]
    for r, c in centre:
        projection[r, c] = 20
    projection[0, 0] = -20
    mask = mask_from_projection(projection, morphology)
    expected = np.zeros((10, 10), dtype=bool)
    if flipped and morphology == "raster":  # only the first patch survives; dilation adds the next one
        expected[0, 0:2] = True
    elif flipped:  # dilated inside the grid to 2x2
        expected[0:2, 0:2] = True
    elif morphology == "raster":  # raster indices 22-27, 32-37 and 42 dilate to 21-28, 31-38, 41-43; closing fills
        # the one-patch gaps 29-30 and 39-40 (dilate to 20-44, erode the two ends) -> 21..43
        expected[2, 1:] = True
        expected[3, :] = True
        expected[4, 0:4] = True
    else:  # rows 2-3 cols 2-7 plus (4, 2), dilated to rows 1-4 cols 1-8 plus row 5 cols 1-3; OpenCV's closing
        # ignores the outside of the grid, so the region, one patch from the top and sides, grows to the edge
        expected[0:5, :] = True
        expected[5, 0:4] = True
    np.testing.assert_array_equal(mask, expected)


def hand_mask(rows: int, columns: int, kept: list[tuple[int, int]]) -> np.ndarray:
    mask = np.zeros((rows, columns), dtype=bool)
    for row, column in kept:
        mask[row, column] = True
    return mask


# (kept patches, expected after dilate + close) on a 4x5 patch grid, written by hand from the reference's rule:
# 3x3 OpenCV morphology on the flattened (20, 1) column, i.e. along the raster sequence 0..19.
RASTER_CASES = {
    "end of a row wraps to the next row's start": ([(1, 4)], [(1, 3), (1, 4), (2, 0)]),
    "start of a row wraps to the previous row's end": ([(2, 0)], [(1, 4), (2, 0), (2, 1)]),
    "closing fills a one-patch raster gap": ([(1, 0), (1, 4)],  # dilated: 4-6 and 8-10; 7 = (1, 2) is filled
                                             [(0, 4), (1, 0), (1, 1), (1, 2), (1, 3), (1, 4), (2, 0)]),
    "closing grows a run to the sequence's first patch": ([(0, 2)], [(0, 0), (0, 1), (0, 2), (0, 3)]),
    "the sequence's last patch has one neighbour": ([(3, 4)], [(3, 3), (3, 4)]),
}


@pytest.mark.parametrize("case", RASTER_CASES)
def test_raster_morphology_acts_along_the_flattened_patch_sequence(case):
    kept, expected = RASTER_CASES[case]
    np.testing.assert_array_equal(dilate_and_close(hand_mask(4, 5, kept), "raster"), hand_mask(4, 5, expected))


def test_grid_morphology_acts_on_2d_neighbours():
    """The same single patch at a row's end: 2-D dilation takes the patches above and below, never the next row's
    first patch; closing then reaches the bottom edge (OpenCV's border never wins the erosion)."""
    expected = [(row, column) for row in range(4) for column in (3, 4)]
    np.testing.assert_array_equal(dilate_and_close(hand_mask(4, 5, [(1, 4)]), "grid"), hand_mask(4, 5, expected))


def test_masking_follows_the_raster_rule_by_default():
    """A single kept patch at a row's end (sign flipped, as it is off-centre) through the detector's own path."""
    projection = np.zeros((4, 5))
    projection[1, 4] = -20
    np.testing.assert_array_equal(mask_from_projection(projection), hand_mask(4, 5, [(1, 3), (1, 4), (2, 0)]))
    assert AnomalyDINO(CheckerBackbone(), 8, "capsule").mask_morphology == "raster"


@pytest.mark.parametrize("masking", ["off", "on"])
def test_differentiable_score_equals_faiss_score_and_has_gradient(tiny_backbone, masking, monkeypatch):
    monkeypatch.setattr(anomalydino, "SIMILARITY_CHUNK", 500)  # many bank chunks
    backbone = LoudBackbone(tiny_backbone)
    detector = AnomalyDINO(backbone, 32, "bottle", masking=masking)
    detector.fit(random_images(1, 32, 40, seed=8))
    x = torch.stack([detector.preprocess(image) for image in random_images(3, 32, 40, seed=9)]).requires_grad_()
    features = backbone(x)
    output = detector.score(features)
    masks = None if output.masks is None else torch.from_numpy(output.masks)
    if masking == "on":
        assert 0 < output.masks.sum() < output.masks.size  # the mask does something
    scores = detector.score_tensor(features, masks)
    np.testing.assert_allclose(scores.detach().numpy(), output.scores, atol=1e-5)
    np.testing.assert_allclose(detector.score_tensor(features, None).detach().numpy(), output.scores, atol=1e-5)
    scores.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def bilinear_half_pixel(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Independent float64 bilinear resize with half-pixel centres, clamped at the edges (OpenCV's convention)."""
    def axis(n_out: int, n_in: int):
        source = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        low = np.floor(source).astype(int)
        return low, np.minimum(low + 1, n_in - 1), source - low
    r0, r1, fr = axis(height, grid.shape[0])
    c0, c1, fc = axis(width, grid.shape[1])
    g = grid.astype(np.float64)
    rows = g[r0] * (1 - fr)[:, None] + g[r1] * fr[:, None]
    return rows[:, c0] * (1 - fc) + rows[:, c1] * fc


def test_independent_bilinear_resize_is_torch_bilinear():
    grid = np.random.default_rng(10).random((5, 4)).astype(np.float32)
    torch_resized = F.interpolate(torch.from_numpy(grid)[None, None], size=(37, 29), mode="bilinear",
                                  align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(bilinear_half_pixel(grid, 37, 29), torch_resized, atol=1e-6)


MAP_SIZES = [((5, 4), (37, 29)), ((1, 1), (1, 1)), ((1, 1), (6, 3)), ((2, 3), (1, 1)), ((3, 7), (9, 40)),
             ((7, 3), (95, 41)), ((32, 32), (900, 900)), ((16, 21), (300, 401))]


@pytest.mark.parametrize("grid_shape, size", MAP_SIZES)
def test_anomaly_map_is_half_pixel_bilinear_then_scipy_gaussian_sigma_4(grid_shape, size):
    rng = np.random.default_rng(sum(grid_shape) + sum(size))
    grid = (rng.random(grid_shape) * (rng.random(grid_shape) > 0.4)).astype(np.float32)  # masked-like zeros
    expected = gaussian_filter(bilinear_half_pixel(grid, *size), sigma=4, mode="reflect", truncate=4.0)
    before = gaussian_filter(cv2.resize(grid, size[::-1], interpolation=cv2.INTER_LINEAR), sigma=4,
                             mode="reflect", truncate=4.0)  # the implementation this one replaced
    got = AnomalyDINO.anomaly_map(grid, size)
    assert got.shape == size and got.dtype == np.float32
    peak = max(float(np.abs(expected).max()), 1e-12)
    assert np.abs(got - expected).max() <= 1e-6 * peak
    assert np.abs(got - before).max() <= 1e-6 * peak


@pytest.mark.integration
def test_one_shot_bottle_image_auroc_with_efficientnet_lite0(mvtec_root: Path):
    """1-shot (seed 0) on the whole bottle test split (20 good + 63 defective) with real ImageNet weights; the
    differentiable score agrees with faiss at the real memory-bank size (8 views x 28 x 28 = 6272 patches)."""
    started = time.perf_counter()
    backbone = get_registry().get("backbone", "efficientnet_lite0").create()
    bottle = mvtec_root / "bottle"
    reference = sorted((bottle / "train" / "good").glob("*.png"))[0:1]
    test = sorted((bottle / "test").glob("*/*.png"))
    labels = np.array([int(path.parent.name != "good") for path in test])
    assert len(test) == 83 and labels.sum() == 63

    detector = AnomalyDINO(backbone, 224, "bottle")
    detector.fit([Image.open(path).convert("RGB") for path in reference])
    scores = []
    for start in range(0, len(test), 16):
        batch = torch.stack([detector.preprocess(Image.open(path).convert("RGB")) for path in test[start:start + 16]])
        with torch.no_grad():
            scores.append(detector.score(backbone(batch)).scores)
    scores = np.concatenate(scores)
    auroc = roc_auc_score(labels, scores)
    x = torch.stack([detector.preprocess(Image.open(path).convert("RGB")) for path in test[-4:]]).requires_grad_()
    features = backbone(x)
    differentiable = detector.score_tensor(features, None)
    np.testing.assert_allclose(differentiable.detach().numpy(), scores[-4:], atol=1e-5)
    differentiable.sum().backward()
    assert x.grad.abs().sum() > 0
    print(f"bottle 1-shot efficientnet_lite0@224 image AUROC {auroc:.4f} in {time.perf_counter() - started:.1f} s")
    assert auroc >= 0.95
