"""Misbehaving components and damaged data: a failing cell fails alone, with one line naming its component."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from robustad import Features, hookimpl
from robustad.declaration import Request
from robustad.engine.executors import run_local
from robustad.engine.progress import SilentReporter
from robustad.engine.request import build_cells
from robustad.engine.settings import RunSettings
from robustad.errors import RobustadError
from robustad.plugins import get_registry
from robustad.results.leaderboard import read_rows
from tests.conftest import TinyBackbone
from tests.test_request import folder_dataset, write_image


class NanBackbone(TinyBackbone):
    """The tiny backbone, but the patch tokens of images whose first pixel is bright are NaN."""

    name = "nan_tokens"

    def __init__(self, *, weights: str | None = None, device: str = "cpu") -> None:
        super().__init__()

    def forward(self, x):
        features = super().forward(x)
        bright = x[:, 0, 0, 0] > 0.5
        tokens = torch.where(bright.view(-1, 1, 1, 1), float("nan"), features.patch_tokens)
        return Features(tokens, features.global_token)


class TinyBackboneComponent(TinyBackbone):
    name = "tiny_ok"

    def __init__(self, *, weights: str | None = None, device: str = "cpu") -> None:
        super().__init__()


class NanAttack:
    name = "nan_pixels"
    description = "returns NaN pixels"
    needs_surrogate = False

    def perturb(self, target):
        return torch.full_like(target.images, float("nan"))

    def describe(self, eps):
        return {"steps": 0}


class UpAttack:
    name = "up"
    description = "adds eps everywhere"
    needs_surrogate = False

    def perturb(self, target):
        return (target.images + target.eps).clamp(0, 1)

    def describe(self, eps):
        return {"steps": 1}


class BrokenCalibrator:
    name = "raises_in_fit"
    description = "raises in fit"

    def fit(self, scores, labels):
        raise ZeroDivisionError("the plugin divided by zero")

    def predict(self, scores):
        return np.full(len(scores), 0.5)


class FaultyPlugins:
    @hookimpl
    def register_backbones(self, register):
        register(NanBackbone)
        register(TinyBackboneComponent)

    @hookimpl
    def register_attacks(self, register):
        register(NanAttack)
        register(UpAttack)

    @hookimpl
    def register_calibrators(self, register):
        register(BrokenCalibrator)


@pytest.fixture
def registry():
    registry = get_registry()
    if not registry.pm.has_plugin("faulty"):
        registry.add(FaultyPlugins(), "faulty", "robustad-faulty")
    return registry


def run(registry, root, out, **request):
    fields = dict(dataset="folder", data_root=root, category="all", shots="1", seeds="0", backbone="tiny_ok",
                  weights="", resolution="32", detector="anomalydino", surrogate="linear", attack="up",
                  eps="8/255", calib="platt", calib_fraction=0.3, options=[])
    cells = build_cells(Request(noise_control=False, **{**fields, **request}), registry)
    return run_local(cells, RunSettings(data_root=root, pixel_metrics=False, resamples=50), out, registry,
                     SilentReporter(), lambda cell, row: None)


def test_a_calibrator_raising_in_fit_fails_its_cells_only(registry, tmp_path):
    root = folder_dataset(tmp_path / "data")
    result = run(registry, root, tmp_path / "board.csv", calib="raises_in_fit,platt")
    assert [r["calibrator"] for r in read_rows(tmp_path / "board.csv")] == ["platt"]
    [(key, message)] = result.failures
    assert "calibrator 'raises_in_fit' (plugin 'faulty' from robustad-faulty)" in message
    assert "ZeroDivisionError: the plugin divided by zero" in message and "\n" not in message


def test_non_finite_features_and_pixels_are_refused_naming_the_component(registry, tmp_path):
    root = folder_dataset(tmp_path / "data")
    result = run(registry, root, tmp_path / "a.csv", backbone="nan_tokens")
    assert not (tmp_path / "a.csv").exists() or not read_rows(tmp_path / "a.csv")
    assert "backbone 'nan_tokens' (plugin 'faulty' from robustad-faulty) returned" in result.failures[0][1]
    assert "non-finite" in result.failures[0][1]
    result = run(registry, root, tmp_path / "b.csv", attack="nan_pixels,up")
    assert [r["attack"] for r in read_rows(tmp_path / "b.csv")] == ["up"]
    [(_, message)] = result.failures
    assert "attack 'nan_pixels'" in message and "non-finite value(s) in its adversarial images" in message


def test_a_truncated_image_fails_its_group_and_the_others_land(registry, tmp_path):
    root = folder_dataset(tmp_path / "data")
    folder_dataset(tmp_path / "other")
    (tmp_path / "other" / "part").rename(root / "second")
    broken = root / "second" / "test" / "good" / "003.png"
    broken.write_bytes(broken.read_bytes()[:60])
    result = run(registry, root, tmp_path / "board.csv")
    assert [r["category"] for r in read_rows(tmp_path / "board.csv")] == ["part"]
    [(_, message)] = result.failures
    assert "cannot read image" in message and "003.png" in message


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    from robustad.kit.images import load_rgb

    levels = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(levels).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    pixels = np.asarray(load_rgb(tmp_path / "deep.png"))
    np.testing.assert_array_equal(pixels[..., 0], np.round(levels / 257).astype(np.uint8))
    assert pixels.min() == 0 and pixels.max() == 255 and len(np.unique(pixels)) > 200


def test_a_sixteen_bit_dataset_scores_like_its_eight_bit_copy(registry, tmp_path):
    eight = folder_dataset(tmp_path / "eight")
    sixteen = tmp_path / "sixteen"
    for path in sorted(eight.rglob("*.png")):
        target = sixteen / path.relative_to(eight)
        target.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.asarray(Image.open(path))
        if pixels.ndim == 3:  # images become 16-bit grey, the 8-bit copy their 8-bit grey
            grey = pixels.mean(axis=2).round().astype(np.uint16)
            Image.fromarray((grey * 257).astype(np.uint16)).save(target)
            Image.fromarray(grey.astype(np.uint8)).save(path)
        else:
            Image.fromarray(pixels).save(target)
    run(registry, eight, tmp_path / "eight.csv", attack="none")
    run(registry, sixteen, tmp_path / "sixteen.csv", attack="none")
    [a], [b] = read_rows(tmp_path / "eight.csv"), read_rows(tmp_path / "sixteen.csv")
    assert a["clean_auroc"] == b["clean_auroc"] and a["clean_ece"] == b["clean_ece"]


def test_mixed_image_sizes_run_at_any_batch_size(registry, tmp_path):
    root = folder_dataset(tmp_path / "data")
    sizes = [(32, 32), (40, 24), (24, 56), (48, 48), (36, 28), (28, 44)]
    for i, size in enumerate(sizes):
        write_image(root / "part" / "test" / "good" / f"{i:03d}.png", 30 + i, size=size)
        write_image(root / "part" / "test" / "bad" / f"{i:03d}.png", 40 + i, size=size)
        write_image(root / "part" / "ground_truth" / "bad" / f"{i:03d}_mask.png", 0, size=size, mask=True)
    rows = {}
    for batch_size in (1, 8):
        fields = dict(dataset="folder", data_root=root, category="part", shots="1", seeds="0",
                      backbone="tiny_ok", weights="", resolution="32", detector="anomalydino", surrogate="linear",
                      attack="up", eps="8/255", calib="platt", calib_fraction=0.3, options=[])
        cells = build_cells(Request(noise_control=False, **fields), registry)
        out = tmp_path / f"b{batch_size}.csv"
        run_local(cells, RunSettings(data_root=root, batch_size=batch_size, resamples=50), out, registry,
                  SilentReporter(), lambda cell, row: None)
        [rows[batch_size]] = read_rows(out)
    for column in ("clean_auroc", "clean_ece", "adv_auroc", "adv_ece", "clean_pixel_auroc", "adv_aupro"):
        assert rows[1][column] != "" and float(rows[1][column]) == pytest.approx(float(rows[8][column]), abs=1e-6)


class RaisingAttack:
    name = "raises_in_perturb"
    description = "raises in perturb"
    needs_surrogate = False

    def perturb(self, target):
        raise ValueError("the plugin's attack broke")

    def describe(self, eps):
        return {"steps": 1}


class RaisingInInitAttack:
    name = "raises_in_init"
    description = "its constructor raises"

    def __init__(self) -> None:
        raise ValueError("the plugin's constructor broke")

    def perturb(self, target):
        return target.images

    def describe(self, eps):
        return {"steps": 0}


class RaisingPlugin:
    @hookimpl
    def register_attacks(self, register):
        register(RaisingAttack)
        register(RaisingInInitAttack)


def test_an_attack_raising_in_perturb_fails_its_cells_only(registry, tmp_path):
    if not registry.pm.has_plugin("raising"):
        registry.add(RaisingPlugin(), "raising", "robustad-raising")
    root = folder_dataset(tmp_path / "data")
    result = run(registry, root, tmp_path / "board.csv", attack="raises_in_perturb,up")
    assert [r["attack"] for r in read_rows(tmp_path / "board.csv")] == ["up"]
    [(_, message)] = result.failures
    assert "attack 'raises_in_perturb' (plugin 'raising' from robustad-raising): ValueError: the plugin's attack" \
           in message


def test_save_scores_checks_and_warnings(cli, tmp_path):
    env = {"ROBUSTAD_CACHE": str(tmp_path / "cache")}
    grid = ["--attack", "none", "--calib", "none", "--resolution", "32", "--category", "disc", "--resamples", "0",
            "--no-pixel-metrics", "--out", str(tmp_path / "board.csv")]
    a_file = tmp_path / "scores.txt"
    a_file.write_text("not a folder")
    result = cli("bench", *grid, "--save-scores", a_file, env=env)
    assert result.returncode == 2 and "--save-scores" in result.stderr and "is a file" in result.stderr
    assert not (tmp_path / "board.csv").exists()
    assert cli("bench", *grid, env=env).returncode == 0  # finished without scores
    rerun = cli("bench", *grid, "--save-scores", tmp_path / "scores", env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 finished cell(s) are not run again and get no scores" in rerun.stderr
    assert rerun.stderr.count("\n") == 1


def test_two_bench_processes_on_the_same_cells_write_each_row_once(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "board.csv"
    command = [sys.executable, "-m", "robustad", "bench", "--attack", "none", "--calib", "platt,none",
               "--resolution", "32", "--resamples", "0", "--no-pixel-metrics", "--threads", "1", "--out", str(out)]
    env = {**__import__("os").environ, "ROBUSTAD_CACHE": str(tmp_path / "cache")}
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    keys = [row["cell_hash"] for row in read_rows(out)]
    assert len(keys) == len(set(keys)) == 4  # 2 demo categories x 2 calibrators, each once


def test_an_attack_raising_in_its_constructor_is_one_line_before_any_work(registry, tmp_path):
    if not registry.pm.has_plugin("raising"):
        registry.add(RaisingPlugin(), "raising", "robustad-raising")
    root = folder_dataset(tmp_path / "data")
    with pytest.raises(RobustadError) as caught:
        run(registry, root, tmp_path / "board.csv", attack="raises_in_init")
    message = str(caught.value)
    assert "attack 'raises_in_init' (plugin 'raising' from robustad-raising): ValueError: the plugin's constructor" \
           in message and "\n" not in message
    assert not (tmp_path / "board.csv").exists()
