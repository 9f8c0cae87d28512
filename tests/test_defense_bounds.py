"""Defense options are bounded before any work by what the images and memory allow: no hang (smoothing with 1e8
draws, a 99 px median on 64 px images) and no late error blamed on the backbone (sigma 1e300)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from robustad.engine.request import build_cells
from robustad.errors import RobustadError
from robustad.plugins import get_registry
from tests.boards import run_robustad
from tests.test_request import REQUEST, folder_dataset


@pytest.mark.parametrize("args, message", [
    (["--defense", "median:99", "--resolution", "64"], "median option kernel=99: expected an integer from 1 to 15"),
    (["--defense", "blur:1e6"], "blur option sigma=1000000.0: expected a finite number > 0 and <= 20"),
    (["--defense", "gaussian:1e300"], "gaussian option sigma=1e+300: expected a finite number > 0 and <= 10"),
    (["--defense", "smoothing", "--opt", "defense.smoothing.samples=100000000"],
     "smoothing option samples=100000000: expected an integer from 1 to 10000"),
])
def test_defense_options_beyond_their_bounds_are_one_line_before_any_work(tmp_path, monkeypatch, capsys, args,
                                                                           message):
    code, out, err = run_robustad(monkeypatch, capsys, "bench", *args, "--attack", "none", "--out",
                                  tmp_path / "out.csv")
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert "cells" not in out and not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("defense, resolution, refused", [("blur:5", 15, True), ("blur:5", 16, False),
                                                         ("blur:2.4", 8, True), ("median:15", 8, False)])
def test_a_filter_as_wide_as_the_image_is_refused_when_cells_are_built(tmp_path, defense, resolution, refused):
    request = replace(REQUEST, data_root=folder_dataset(tmp_path / "data"), defense=defense,
                      resolution=str(resolution), backbone="efficientnet_lite0", weights="random")
    if not refused:
        assert build_cells(request, get_registry())
        return
    with pytest.raises(RobustadError, match=f"blur' .*reads {resolution} px on each side"):
        build_cells(request, get_registry())


@pytest.mark.parametrize("defense, options, message", [
    ("median", {"kernel": 100001}, "kernel=100001"), ("blur", {"sigma": 1e300}, "sigma=1e+300"),
    ("smoothing", {"sigma": 1e300}, "sigma=1e+300"), ("gaussian", {"samples": 10001}, "samples=10001"),
    ("median", {"kernel": 15.0}, "kernel=15.0"),
])
def test_the_constructors_refuse_values_beyond_the_bounds(defense, options, message):
    with pytest.raises(RobustadError, match=re.escape(message)):
        get_registry().get("defense", defense).create(**options)
