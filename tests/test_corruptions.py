"""Natural corruptions (``--norm corruption``): each corruption against its library or its formula, computed
independently here with the paper's constants; severity 0 is the clean image; the threat model's severities; the
plugin's per-image seeding."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from robustad_plugins import corruptions
from skimage.color import hsv2rgb, rgb2hsv
from skimage.filters import gaussian

import robustad
from robustad.contracts import AttackTarget
from robustad.engine.attacking import _checked
from robustad.engine.guard import ComponentError
from robustad.engine.request import build_cells, with_noise_control
from robustad.errors import RobustadError
from robustad.kit.threat import CORRUPTION, canonical_eps, check_norm, parse_eps
from robustad.plugins import get_registry
from robustad.records import Cell, DetectorOutput
from robustad.results.corruptions import mean_over_corruptions
from robustad.results.entries import ranking
from robustad.results.frame import load_rows, numeric
from tests.test_request import REQUEST, folder_dataset

SEED = 1234


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A 64 x 48 RGB image on the 8-bit grid, with structure (a gradient and a bright square) and texture."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:64, 0:48] / 64
    base = np.stack([0.2 + 0.5 * x, 0.3 + 0.4 * y, 0.5 + 0.2 * x * y], axis=-1)
    base[20:36, 14:30] = (0.9, 0.8, 0.7)
    base += rng.normal(0, 0.05, base.shape)
    return np.round(np.clip(base, 0, 1) * 255) / 255


def apply(image: np.ndarray, name: str, severity: int) -> np.ndarray:
    return corruptions.corrupt(image, name, severity, np.random.default_rng(SEED))


@pytest.mark.parametrize("name", list(corruptions.CORRUPTIONS))
def test_severity_zero_is_the_clean_image(image, name):
    assert np.array_equal(apply(image, name, 0), image)


@pytest.mark.parametrize("name", list(corruptions.CORRUPTIONS))
def test_every_corruption_changes_the_image_within_the_pixel_range(image, name):
    corrupted = apply(image, name, 3)
    assert corrupted.shape == image.shape and corrupted.min() >= 0 and corrupted.max() <= 1
    assert np.abs(corrupted - image).mean() > 1e-3


def test_noises_follow_their_formulas(image):
    normal = np.random.default_rng(SEED).standard_normal(image.shape)
    assert np.allclose(apply(image, "gaussian_noise", 3), np.clip(image + 0.18 * normal, 0, 1))
    assert np.allclose(apply(image, "speckle_noise", 4), np.clip(image + image * 0.45 * normal, 0, 1))
    photons = np.random.default_rng(SEED).poisson(image * 12)
    assert np.allclose(apply(image, "shot_noise", 3), np.clip(photons / 12, 0, 1))


def test_impulse_noise_sets_the_papers_share_of_values_to_0_or_1_with_equal_odds():
    grey = np.full((96, 96, 3), 0.5)
    corrupted = apply(grey, "impulse_noise", 4)  # amount 0.17
    hit = corrupted != 0.5
    n = grey.size
    assert set(np.unique(corrupted[hit])) <= {0.0, 1.0}
    assert abs(hit.mean() - 0.17) < 5 * np.sqrt(0.17 * 0.83 / n)
    assert abs((corrupted[hit] == 1).mean() - 0.5) < 5 * np.sqrt(0.25 / hit.sum())


def test_gaussian_blur_equals_scikit_image(image):
    expected = gaussian(image, sigma=3, channel_axis=-1)  # severity 3: sigma 3, the paper's call
    assert np.allclose(apply(image, "gaussian_blur", 3), np.clip(expected, 0, 1), atol=1e-12)


@pytest.mark.parametrize("severity,radius,alias", [(1, 3, 0.1), (4, 8, 0.5), (5, 10, 0.5)])
def test_defocus_blur_equals_opencvs_disk_filter(image, severity, radius, alias):
    half = max(8, radius)
    grid = np.arange(-half, half + 1)
    xs, ys = np.meshgrid(grid, grid)
    disk = ((xs ** 2 + ys ** 2) <= radius ** 2).astype(np.float32)
    disk /= disk.sum()
    size = 3 if radius <= 8 else 5
    kernel = cv2.GaussianBlur(disk, ksize=(size, size), sigmaX=alias)
    expected = np.stack([cv2.filter2D(image[..., c].astype(np.float32), -1, kernel) for c in range(3)], axis=-1)
    assert np.allclose(apply(image, "defocus_blur", severity), np.clip(expected, 0, 1), atol=1e-5)


def test_motion_blur_spreads_a_point_along_its_line_with_gaussian_weights():
    point = np.zeros((80, 80, 3))
    point[40, 40] = 1.0
    blurred = apply(point, "motion_blur", 2)  # radius 15, sigma 5
    angle = np.deg2rad(np.random.default_rng(SEED).uniform(-45, 45))
    expected = np.zeros((80, 80))
    weights = np.exp(-np.arange(31) ** 2 / 50.0)
    for i, weight in enumerate(weights / weights.sum()):  # out(p) = sum_i w_i x(p + d_i): the point lands at q - d_i
        expected[40 - round(i * np.sin(angle)), 40 - round(i * np.cos(angle))] += weight
    assert np.allclose(blurred[..., 0], expected) and np.isclose(blurred.sum(), 3.0)


def test_zoom_blur_of_a_ramp_is_the_mean_of_its_linearly_zoomed_crops():
    width = 60
    ramp = np.broadcast_to(np.arange(width) / 100.0, (40, width))[..., None].repeat(3, axis=-1).copy()
    columns = [np.arange(width) / 100.0]
    for factor in np.arange(1, 1.21, 0.02):  # severity 3
        crop = int(np.ceil(width / factor))
        left, zoomed = (width - crop) // 2, int(round(crop * factor))
        columns.append((left + np.arange(width) * (crop - 1) / (zoomed - 1)) / 100.0)  # linear: exact on a ramp
    expected = np.mean(columns, axis=0)
    assert np.allclose(apply(ramp, "zoom_blur", 3)[20, :, 1], expected, atol=1e-9)


def test_brightness_raises_the_hsv_value_as_scikit_image_does(image):
    hsv = rgb2hsv(image)
    hsv[..., 2] = np.clip(hsv[..., 2] + 0.3, 0, 1)
    assert np.allclose(apply(image, "brightness", 3), hsv2rgb(hsv), atol=1e-12)
    black = np.zeros((4, 4, 3))
    assert np.allclose(apply(black, "brightness", 5), 0.5)


def test_contrast_pulls_each_channel_towards_its_mean(image):
    means = image.mean(axis=(0, 1))
    assert np.allclose(apply(image, "contrast", 2), (image - means) * 0.3 + means)


def test_jpeg_compression_equals_opencvs_encoder_at_the_papers_quality(image):
    pixels = np.round(image * 255).astype(np.uint8)
    _, encoded = cv2.imencode(".jpg", pixels[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 10])  # severity 4
    expected = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1] / 255
    assert np.array_equal(apply(image, "jpeg_compression", 4), expected)


def test_pixelate_at_half_size_is_the_mean_of_2x2_blocks_repeated(image):
    pixels = np.round(image * 255)
    blocks = pixels.reshape(32, 2, 24, 2, 3).mean(axis=(1, 3))
    expected = blocks.repeat(2, axis=0).repeat(2, axis=1) / 255  # severity 2: 0.5
    difference = np.abs(apply(image, "pixelate", 2) - expected)
    assert difference.max() <= 1 / 255 + 1e-12 and difference.mean() < 0.6 / 255  # Pillow rounds in fixed point


def test_elastic_transform_samples_the_image_bilinearly_at_smoothed_random_displacements(image):
    height, width = image.shape[:2]
    rng = np.random.default_rng(SEED)
    reach, sigma, alpha = 0.005 * height, 0.01 * np.array([height, width]), 250 * 0.085  # severity 3
    dx, dy = (alpha * gaussian(rng.uniform(-reach, reach, (height, width)), sigma, mode="reflect", truncate=3)
              for _ in range(2))
    rows, columns = np.mgrid[0:height, 0:width]
    grid = torch.from_numpy(np.stack([(columns + dx) / (width - 1), (rows + dy) / (height - 1)], -1) * 2 - 1)
    expected = torch.nn.functional.grid_sample(torch.from_numpy(image).permute(2, 0, 1)[None], grid[None],
                                               mode="bilinear", align_corners=True)[0].permute(1, 2, 0).numpy()
    inside = ((rows + dy >= 0) & (rows + dy <= height - 1) & (columns + dx >= 0) & (columns + dx <= width - 1))
    assert inside.mean() > 0.9 and np.abs(dx).max() > 0.5
    assert np.allclose(apply(image, "elastic_transform", 3)[inside], expected[inside], atol=1e-9)


def test_severities_are_integers_from_0_to_5_under_the_corruption_threat_model():
    assert check_norm(CORRUPTION) == CORRUPTION
    assert parse_eps("3", CORRUPTION) == 3.0 and parse_eps("0", CORRUPTION) == 0.0
    assert canonical_eps("3.0", CORRUPTION) == "3"
    for bad in ("6", "1.5", "-1", "2/255"):
        with pytest.raises(RobustadError, match="severity"):
            parse_eps(bad, CORRUPTION)


def target(images: torch.Tensor, seeds: list[int], severity: int) -> AttackTarget:
    return AttackTarget(images=images, labels=torch.zeros(len(images), dtype=torch.long), eps=float(severity),
                        seeds=seeds, model=None, score=lambda x: x.mean(dim=(1, 2, 3)), norm=CORRUPTION)


def test_the_plugin_draws_per_image_so_a_batch_does_not_change_an_image(image):
    images = torch.from_numpy(np.stack([image, image[::-1].copy()])).permute(0, 3, 1, 2).float()
    attack = corruptions.Corruption(corruption="shot_noise")
    both = attack.perturb(target(images, [5, 9], 2))
    alone = attack.perturb(target(images[1:], [9], 2))
    assert torch.equal(both[1:], alone)
    again = attack.perturb(target(images[:1], [6], 2))
    assert not torch.equal(both[:1], again)
    assert torch.equal(attack.perturb(target(images, [5, 9], 0)), images)
    assert attack.describe(2.0) == {"steps": 0, "corruption": "shot_noise"}


def test_an_unknown_corruption_is_one_line_naming_the_choices():
    with pytest.raises(RobustadError, match="corruption='snow'.*expected one of gaussian_noise"):
        corruptions.Corruption(corruption="snow")


@pytest.fixture(scope="module")
def demo_rows(tmp_path_factory) -> pd.DataFrame:
    """Every corruption at severities 0, 1, 3 and 5 on the demo set (efficientnet_lite0 at 64 px, AnomalyDINO)."""
    out = tmp_path_factory.mktemp("corruptions") / "leaderboard.csv"
    robustad.bench(dataset="demo", category="weave", resolution="64", detector="anomalydino",
                   attack=[f"corruption:{name}" for name in corruptions.CORRUPTIONS], norm="corruption",
                   eps="0,1,3,5", calib="platt", pixel_metrics=False, resamples=100, threads=1, chunk=16, out=out)
    return load_rows(out, [])


def test_corruption_rows_record_corruption_and_severity_and_take_no_noise_control(demo_rows):
    assert set(demo_rows["attack"]) == {"corruption"} and set(demo_rows["surrogate"]) == {"none"}
    assert set(demo_rows["norm"]) == {CORRUPTION}
    assert sorted(zip(demo_rows["corruption"], demo_rows["eps"])) == sorted(
        (name, str(severity)) for name in corruptions.CORRUPTIONS for severity in (0, 1, 3, 5))
    assert np.allclose(numeric(demo_rows, "eps_value"), demo_rows["eps"].astype(float))


def test_severity_zero_rows_equal_the_clean_rows(demo_rows):
    clean = demo_rows[demo_rows["eps"] == "0"]
    for metric in ("auroc", "ap", "f1", "ece", "brier"):
        assert np.array_equal(numeric(clean, f"adv_{metric}"), numeric(clean, f"clean_{metric}"))


def test_a_corruption_is_reported_as_it_falls_even_where_the_clean_image_would_score_better(tmp_path, demo_rows):
    """keep_clean is the adversary's choice; a corruption chooses nothing, so turning it off changes no number."""
    out = tmp_path / "leaderboard.csv"
    robustad.bench(dataset="demo", category="weave", resolution="64", detector="anomalydino",
                   attack="corruption:brightness,corruption:gaussian_noise", norm="corruption", eps="3",
                   calib="platt", pixel_metrics=False, resamples=100, threads=1, chunk=16, out=out, keep_clean=False)
    plain = load_rows(out, []).set_index("corruption")
    kept = demo_rows[demo_rows["eps"] == "3"].set_index("corruption").loc[plain.index]
    assert set(kept["keep_clean"].astype(str)) == {"True"} and set(plain["keep_clean"].astype(str)) == {"False"}
    for metric in ("adv_auroc", "adv_ap", "adv_ece"):
        assert np.array_equal(numeric(kept, metric), numeric(plain, metric))


def test_the_mean_over_corruptions_is_the_mean_of_their_rows_and_falls_with_severity(demo_rows):
    summary = mean_over_corruptions(demo_rows).set_index("severity")
    assert list(summary.index) == [0, 1, 3, 5] and set(summary["corruptions"]) == {13}
    for severity in (1, 3, 5):
        own = demo_rows[demo_rows["eps"] == str(severity)]
        assert summary.loc[severity, "auroc_mean"] == pytest.approx(float(np.mean(numeric(own, "adv_auroc"))))
        assert summary.loc[severity, "auroc_ci_low"] <= summary.loc[severity, "auroc_mean"]
        if numeric(own, "adv_auroc").between(0, 1, inclusive="neither").all():  # at 0 or 1 the Wilson interval
            assert summary.loc[severity, "auroc_ci_low"] == pytest.approx(
                float(np.mean(numeric(own, "adv_auroc_ci_low"))))
    assert summary.loc[0, "auroc_mean"] == pytest.approx(float(numeric(demo_rows, "clean_auroc").iloc[0]))
    means, highs = summary["auroc_mean"].to_numpy(), summary["auroc_ci_high"].to_numpy()
    for lower in range(len(means)):  # monotone non-increasing within intervals: no later mean above an interval
        assert all(means[later] <= highs[lower] for later in range(lower + 1, len(means)))
    assert means[-1] < means[0] - 0.05  # and it does fall: severity 5 is well below clean


def test_the_site_ranks_the_mean_over_corruptions_as_a_threat_model_of_its_own(demo_rows):
    lines = ranking(demo_rows)
    corrupted = lines[lines["threat"] == "corruptions"].set_index("eps")
    summary = mean_over_corruptions(demo_rows).set_index("severity")
    assert sorted(corrupted.index) == ["1", "3", "5"] and set(lines["threat"]) == {"corruptions"}
    for severity in (1, 3, 5):
        assert corrupted.loc[str(severity), "adv_auroc_mean"] == summary.loc[severity, "auroc_mean"]
        assert corrupted.loc[str(severity), "attack"] == "mean of 13 corruptions"


@pytest.fixture
def folder(tmp_path):
    return folder_dataset(tmp_path)


def built(data, **changes) -> list:
    return build_cells(replace(REQUEST, data_root=data, **changes), get_registry())


def test_corruption_cells_take_the_severity_as_eps_and_no_noise_control(folder):
    attacks = with_noise_control("corruption:motion_blur,corruption:contrast", CORRUPTION)
    assert attacks == ["corruption:motion_blur", "corruption:contrast"]
    assert with_noise_control("pgd", "linf") == ["noise", "pgd"]
    found = built(folder, attack=attacks, norm=CORRUPTION, eps="0,3.0,5")
    assert sorted((c.eps, c.component_options("attack", "corruption")["corruption"]) for c in found) == sorted(
        (e, name) for e in ("0", "3", "5") for name in ("motion_blur", "contrast"))
    assert {(c.norm, c.surrogate, c.attack) for c in found} == {(CORRUPTION, "none", "corruption")}


@pytest.mark.parametrize("changes, message", [
    ({"attack": "pgd", "norm": CORRUPTION, "eps": "3"}, "attack 'pgd' does not support --norm corruption"),
    ({"attack": "corruption:motion_blur", "eps": "2/255"}, "attack 'corruption:motion_blur' does not support "
                                                             "--norm linf"),
    ({"attack": "corruption:motion_blur", "norm": CORRUPTION, "eps": "8/255"}, "severity '8/255' under --norm "
                                                                                "corruption: expected an integer"),
])
def test_what_the_corruption_threat_model_cannot_run_is_refused_in_one_line(folder, changes, message):
    with pytest.raises(RobustadError) as error:
        built(folder, **changes)
    assert message in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_the_engine_checks_pixels_but_no_ball_under_a_corruption():
    clean = torch.full((1, 3, 4, 4), 0.5)
    cell = Cell(dataset="demo", category="weave", shots="1", seed=0, backbone="tiny", weights="", resolution=32,
                detector="anomalydino", surrogate="none", attack="corruption", eps="3", calibrator="platt",
                calib_fraction=0.3, norm=CORRUPTION)

    class Stage:
        backbone = type("Undefended", (), {"defense": None})  # no defense in front of the detector

        def score(self, images):
            return DetectorOutput(np.zeros(len(images)), np.zeros((len(images), 1, 1)))

    component = get_registry().get("attack", "corruption")
    far = torch.zeros_like(clean)  # 0.5 away in every pixel: outside any L-inf ball of 8/255, fine here
    assert torch.equal(_checked(far, clean, 3.0, component, cell, Stage()).images, far)
    with pytest.raises(ComponentError, match="pixels outside"):
        _checked(far - 0.1, clean, 3.0, component, cell, Stage())
