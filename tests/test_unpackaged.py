"""Plugins as plain Python objects: a detector class defined here runs under PGD for one call, as the installed
one it copies does, and says where it came from; a broken one is one line naming it."""

from __future__ import annotations

import pytest
from robustad_plugins.anomalydino import AnomalyDINO

import robustad
from robustad.errors import RobustadError
from robustad.plugins import get_registry

GRID = dict(dataset="demo", category="weave", resolution="64", attack="pgd", surrogate="score", eps="8/255",
            calib="platt", options=["attack.pgd.steps=2"], resamples=0, threads=1, pixel_metrics=False,
            noise_control=False)


class NotebookDino(AnomalyDINO):
    """AnomalyDINO under another name, as a notebook would define a detector: not installed, not packaged."""

    name = "notebook_dino"
    description = "AnomalyDINO, defined in a test module"


class Broken:
    """A detector that forgot ``score`` and the rest of its contract."""

    kind = "detector"
    name = "broken_dino"
    description = "lacks its members"


def test_a_detector_class_runs_under_pgd_like_the_installed_one_and_its_rows_name_it(tmp_path):
    ours = robustad.bench(**GRID, detector="notebook_dino", plugins=[NotebookDino], out=tmp_path / "ours.csv")
    theirs = robustad.bench(**GRID, out=tmp_path / "theirs.csv")
    assert ours.written == theirs.written == 1 and not ours.failures
    [mine], [installed] = ours.rows.to_dict("records"), theirs.rows.to_dict("records")
    for metric in ("clean_auroc", "adv_auroc", "n_eval"):
        assert mine[metric] == installed[metric], metric  # the same computation through the same guards
    assert mine["detector"] == "notebook_dino" and mine["unpackaged"] == "tests.test_unpackaged.NotebookDino"
    assert installed["unpackaged"] == ""
    assert "notebook_dino" not in get_registry().components("detector")  # for that call only


def test_a_broken_class_is_one_line_naming_it(tmp_path):
    with pytest.raises(RobustadError) as refused:
        robustad.bench(**GRID, detector="broken_dino", plugins=[Broken], out=tmp_path / "board.csv")
    message = str(refused.value)
    assert "tests.test_unpackaged.Broken" in message and "lacks" in message and "\n" not in message, message
    with pytest.raises(RobustadError, match="plugins: tests.test_unpackaged.GRID|neither a class nor a module"):
        robustad.bench(**GRID, plugins=[GRID], out=tmp_path / "board.csv")
    with pytest.raises(RobustadError, match="already registered by plugin"):  # never shadows an installed name
        robustad.bench(**GRID, plugins=[type("Again", (AnomalyDINO,), {})], out=tmp_path / "board.csv")
    assert not (tmp_path / "board.csv").exists()
