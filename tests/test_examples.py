"""``bench --save-examples N``: which images are kept, that the PNGs show the attack inside its eps ball, and that
cells differing only in the calibrator share one set of images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from robustad_plugins.demo import Demo

from robustad.declaration import Request
from robustad.engine.executors import run_local
from robustad.engine.progress import SilentReporter
from robustad.engine.request import build_cells
from robustad.engine.settings import RunSettings
from robustad.engine.splits import make_split, parse_shots
from robustad.errors import RobustadError
from robustad.plugins import get_registry
from robustad.results.examples import PARTS, read_manifest
from tests.test_runner import CountingPlugin


def test_first_anomalous_eval_images_of_every_attacked_cell(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTAD_CACHE", str(tmp_path / "cache"))
    registry = get_registry()
    if not registry.pm.has_plugin("counting"):
        registry.add(CountingPlugin(), "counting")
    request = Request(noise_control=False, dataset="demo", data_root=None, category="disc", shots="1", seeds="0",
                      backbone="counting", weights="", resolution="32", detector="anomalydino",
                      surrogate="score", attack="fgsm", eps="8/255", calib="platt,none",
                      calib_fraction=0.3, options=[], keep_clean=False)  # every saved image perturbed
    cells = build_cells(request, registry)
    folder = tmp_path / "examples"
    settings = RunSettings(pixel_metrics=False, resamples=0, save_examples=2, examples_dir=folder,
                           save_scores=tmp_path / "scores")
    run_local(cells, settings, tmp_path / "board.csv", registry, SilentReporter(), lambda cell, row: None)

    data = Demo().load(None, "disc")
    split = make_split(data, parse_shots("1"), 0, 0.3)
    wanted = [s.path.as_posix() for s in split.eval if s.label == 1][:2]
    records = [read_manifest(folder / f"{cell.key}.json") for cell in cells]
    assert len(records) == 2 and records[0]["folder"] == records[1]["folder"]  # one attack prefix
    names = [image["name"] for image in records[0]["images"]]
    assert len(names) == 2 and all(path.endswith("/" + name) for path, name in zip(wanted, names))
    assert len(list((folder / records[0]["folder"]).iterdir())) == 2 * len(PARTS)
    scores = pd.read_csv(tmp_path / "scores" / f"{cells[0].key}.csv")
    for image in records[0]["images"]:
        [saved] = scores[scores["path"].str.endswith("/" + image["name"])].itertuples()
        assert image["label"] == saved.label == 1
        assert (image["clean_score"], image["adv_score"]) == pytest.approx((saved.clean_score, saved.adv_score))
        clean, adversarial = (np.asarray(Image.open(folder / image["files"][part]), dtype=int)
                              for part in ("clean", "adversarial"))
        assert clean.shape == adversarial.shape and 0 < np.abs(adversarial - clean).max() <= 8 + 1
        perturbation = np.asarray(Image.open(folder / image["files"]["perturbation"]), dtype=int)
        assert perturbation.min() < 64 and perturbation.max() > 192  # amplified to the full range
        for part in ("map-clean", "map-adversarial"):
            assert max(Image.open(folder / image["files"][part]).size) <= 192


def test_negative_count_and_a_file_for_folder_are_refused(tmp_path):
    with pytest.raises(RobustadError, match="--save-examples -1: expected an integer >= 0"):
        RunSettings(save_examples=-1, examples_dir=tmp_path)
    from robustad.engine.bench import check_outputs

    (tmp_path / "file").write_text("")
    with pytest.raises(RobustadError, match="--examples-dir .* is a file"):
        check_outputs(tmp_path / "board.csv", None, tmp_path / "file")


def test_a_corruptions_perturbation_is_scaled_by_its_largest_change_not_by_the_severity(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTAD_CACHE", str(tmp_path / "cache"))
    registry = get_registry()
    if not registry.pm.has_plugin("counting"):
        registry.add(CountingPlugin(), "counting")
    request = Request(noise_control=False, dataset="demo", data_root=None, category="disc", shots="1", seeds="0",
                      backbone="counting", weights="", resolution="32", detector="anomalydino", surrogate="none",
                      attack="corruption:gaussian_noise", norm="corruption", eps="3", calib="none",
                      calib_fraction=0.3, options=[], keep_clean=False)
    cells = build_cells(request, registry)
    folder = tmp_path / "examples"
    settings = RunSettings(pixel_metrics=False, resamples=0, save_examples=1, examples_dir=folder)
    run_local(cells, settings, tmp_path / "board.csv", registry, SilentReporter(), lambda cell, row: None)

    [image] = read_manifest(folder / f"{cells[0].key}.json")["images"]
    clean, adversarial, perturbation = (np.asarray(Image.open(folder / image["files"][part]), dtype=float) / 255
                                        for part in ("clean", "adversarial", "perturbation"))
    delta = adversarial - clean
    expected = 0.5 + delta / (2 * np.abs(delta).max())  # by hand, from the 8-bit images
    assert perturbation.min() < 0.25 and perturbation.max() > 0.75  # not the faint 0.5 +- delta / 6 of severity 3
    np.testing.assert_allclose(perturbation, expected, atol=4 / 255)
