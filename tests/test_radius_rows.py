"""The robustness radius as row columns (``--radius``, issue 39): on a detector linear in the pixels, run through the
real engine, the row's median radius is the analytic one within the stated tolerance (L-inf and L2); rows without
the field keep their keys; bad requests are one line."""

from __future__ import annotations

import hashlib
import json
import typing
from dataclasses import fields, replace

import numpy as np
import pandas as pd
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
from robustad.metrics import f1_optimal_threshold
from robustad.plugins import get_registry
from robustad.records import Cell, DetectorOutput
from robustad.results.leaderboard import read_rows
from robustad.results.ranges import impossible

SIZE = 8


class PixelBackbone(torch.nn.Module):
    """The image itself as patch tokens (patch 1): a detector on them is a function of the pixels."""

    name = "pixels"
    description = "the pixels as tokens (tests)"
    patch_size = 1
    weights_id = "none"

    def __init__(self, *, weights: str | None = None, device: str = "cpu") -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> Features:
        tokens = x.permute(0, 2, 3, 1)
        return Features(patch_tokens=tokens, global_token=tokens.mean(dim=(1, 2)))


def weights() -> torch.Tensor:
    """Positive weights (h, w, 3): an image brighter where they are large scores higher."""
    return 0.5 + torch.rand(SIZE, SIZE, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


class LinearPixels:
    """score(x) = <w, x> on the [0,1] pixels: the smallest perturbation moving it across t has norm |s - t| / ||w||_q
    (q = 1 for L-inf, 2 for L2), where the box [0,1] does not bind."""

    name = "linear_pixels"
    description = "a linear score of the pixels (tests)"

    def __init__(self, backbone, resolution: int) -> None:
        self.weights = weights()

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return torch.as_tensor(np.array(image.convert("RGB")), dtype=torch.float32).permute(2, 0, 1) / 255

    def fit(self, features) -> None:
        return None

    def score_tensor(self, features: Features, masks=None) -> torch.Tensor:
        tokens = features.patch_tokens
        return (tokens.double() * self.weights.to(tokens.device)).sum(dim=(1, 2, 3))

    def score(self, features: Features) -> DetectorOutput:
        with torch.no_grad():
            scores = self.score_tensor(features).cpu().numpy()
            distances = (features.patch_tokens.double() * self.weights).sum(dim=3).cpu().numpy()
        return DetectorOutput(scores, distances)

    def anomaly_map(self, patch_distances: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return np.zeros(size)


class LinearPlugins:
    @hookimpl
    def register_backbones(self, register):
        register(PixelBackbone)

    @hookimpl
    def register_detectors(self, register):
        register(LinearPixels)


def registry():
    found = get_registry()
    if not found.pm.has_plugin("linear-radius"):
        found.add(LinearPlugins(), "linear-radius", "robustad-radius-tests")
    return found


def dataset(root):
    """Mid-grey images (no clipping within the radii here); defective ones a little brighter in one corner."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("test", 14)):
        for i in range(count):
            base = 128 + rng.integers(-6, 7, (SIZE, SIZE, 3))
            path = root / "part" / split / "good" / f"{i:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(base.astype(np.uint8)).save(path)
            if split == "test":
                bad = base.copy()
                bad[:4, :4] += int(rng.integers(2, 10))
                path = root / "part" / "test" / "bad" / f"{i:03d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(bad.astype(np.uint8)).save(path)
                mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
                mask[:4, :4] = 255
                path = root / "part" / "ground_truth" / "bad" / f"{i:03d}_mask.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask).save(path)
    return root


def request(root, **changes) -> Request:
    values = dict(noise_control=True, dataset="folder", data_root=root, category="part", shots="1", seeds="0",
                  backbone="pixels", weights="", resolution=str(SIZE), detector="linear_pixels", surrogate="score",
                  attack="pgd", eps="8/255", calib="none", calib_fraction=0.3, options=[], radius=True)
    return Request(**{**values, **changes})


def run(tmp_path, **changes):
    root = tmp_path / "data"
    if not root.is_dir():
        dataset(root)
    found = registry()
    cells = build_cells(request(root, **changes), found)
    out, scores = tmp_path / "board.csv", tmp_path / "scores"
    result = run_local(cells, RunSettings(data_root=root, pixel_metrics=False, resamples=200, save_scores=scores),
                       out, found, SilentReporter(), lambda cell, row: None)
    assert not result.failures, result.failures
    return read_rows(out), scores


@pytest.mark.parametrize("norm, eps, dual", [("linf", "8/255", 1), ("l2", "0.5", 2)])
def test_the_rows_median_radius_is_the_analytic_one_within_its_tolerance(tmp_path, norm, eps, dual):
    rows, scores = run(tmp_path, norm=norm, eps=eps)
    [noise] = [r for r in rows if r["attack"] == "noise"]
    [row] = [r for r in rows if r["attack"] == "pgd"]
    assert noise["radius"] in (False, "False") and noise.get("radius_median") in (None, "")
    frame = pd.read_csv(scores / f"{row['cell_hash']}.csv")
    calib, evaluated = frame[frame["split"] == "calib"], frame[frame["split"] == "eval"]
    threshold = f1_optimal_threshold(calib["label"].to_numpy(), calib["clean_score"].to_numpy())
    s, y = evaluated["clean_score"].to_numpy(), evaluated["label"].to_numpy()
    margin = np.where(y == 1, s - threshold, threshold - s)  # how far each must move: anomalous down, normal up
    norm_of_w = float(np.linalg.norm(weights().flatten().numpy(), ord=dual))
    exact = np.maximum(margin, 0) / norm_of_w
    eps_max, tolerance = float(row["radius_eps_max"]), float(row["radius_tol"])
    exact = np.where(exact > eps_max, np.inf, exact)
    assert tolerance == pytest.approx(eps_max / 64) and eps_max == pytest.approx(float(row["eps_value"]))
    assert np.isfinite(np.median(exact)) and (exact > 0).sum() >= 5  # the check is not vacuous
    found = evaluated["radius"].to_numpy()
    finite = np.isfinite(exact)
    assert np.array_equal(np.isfinite(found), finite)
    assert np.all(found[finite] >= exact[finite] - 1e-6) and np.all(found[finite] <= exact[finite] + tolerance + 1e-6)
    median = float(row["radius_median"])
    assert np.median(exact) - 1e-6 <= median <= np.median(exact) + tolerance + 1e-6
    assert float(row["radius_median_ci_low"]) <= median <= float(row["radius_median_ci_high"])
    assert float(row["radius_unmoved"]) == pytest.approx(np.mean(~finite))
    assert int(row["radius_steps"]) == 10 + 6 * 2 and float(row["t_radius_s"]) > 0


def expected_key(cell: Cell) -> str:
    """The key by hand: every first-release field, later ones only where they differ from what older rows ran."""
    values = {f.name: getattr(cell, f.name) for f in fields(Cell)
              if f.metadata["since"] == 1 or getattr(cell, f.name) != f.metadata["before"]}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def cell_of(row: dict) -> Cell:
    """A committed row's cell from its text, fields it lacks at what rows of its time ran with."""
    hints = typing.get_type_hints(Cell)
    values = {}
    for spec in fields(Cell):
        text, kind = row.get(spec.name), hints[spec.name]
        if text is None or (text == "" and kind is not str):
            if spec.metadata["since"] > 1:
                values[spec.name] = spec.metadata["before"]
            continue
        values[spec.name] = {bool: lambda t: t.lower() == "true", int: lambda t: int(float(t)), float: float,
                             str: str}[kind](text)
    return Cell(**values)


def test_rows_without_the_radius_keep_their_keys(tmp_path):
    """Protocol 1: the committed detector and bottle rows; protocol 2: a new grid without --radius, by hand."""
    for board in ("results/detectors/leaderboard.csv", "results/bottle/leaderboard.csv"):
        committed = pd.read_csv(board, dtype=str, keep_default_na=False)
        for _, row in committed.head(40).iterrows():
            cell = cell_of(dict(row))
            assert not cell.radius and row["cell_hash"] in (cell.key, cell.legacy_key)
    root = dataset(tmp_path / "data")
    plain = build_cells(request(root, radius=False), registry())
    assert all(cell.protocol == 2 and cell.key == expected_key(cell)
               for cell in plain)
    searched = build_cells(request(root), registry())
    by_attack = {cell.attack: cell for cell in searched}
    assert by_attack["pgd"].radius and by_attack["pgd"].key != replace(by_attack["pgd"], radius=False).key
    assert not by_attack["noise"].radius and by_attack["noise"].key in {cell.key for cell in plain}


@pytest.mark.parametrize("changes, message", [
    (dict(norm="corruption", attack="corruption:brightness", eps="3"), "--radius with --norm corruption"),
    (dict(attack="noise"), "--radius with --attack noise"),
])
def test_a_radius_the_grid_cannot_search_is_one_line(tmp_path, changes, message):
    root = dataset(tmp_path / "data")
    with pytest.raises(RobustadError, match=message) as caught:
        build_cells(request(root, **changes), registry())
    assert "\n" not in str(caught.value)


def test_hostile_radius_columns_are_impossible_values():
    rows = pd.DataFrame([{"cell_hash": "a", "radius_median": "-0.01", "radius_unmoved": "1.5",
                          "radius_median_ci_low": "0.02", "radius_median_ci_high": "0.01", "radius_steps": "-2"}])
    found = {(item.column, item.value) for item in impossible(rows)}
    assert {("radius_median", "-0.01"), ("radius_unmoved", "1.5"), ("radius_median_ci_low", "0.02"),
            ("radius_steps", "-2")} <= found
