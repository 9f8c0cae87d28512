"""The default demo grid runs without a warning about its own defaults (plain ``temperature`` degenerates on the
demo set's separable calib scores; the default list fits T on Platt's smoothed targets)."""

from __future__ import annotations

import inspect
import warnings

import robustad
from robustad.declaration import Request
from robustad.engine.executors import run_local
from robustad.engine.progress import SilentReporter
from robustad.engine.request import build_cells
from robustad.engine.settings import RunSettings
from robustad.plugins import get_registry


def caught(calibrators: str, tmp_path) -> list[str]:
    """The warnings of a small demo run (clean only, at 112 px) with these calibrators."""
    registry = get_registry()
    request = Request(noise_control=False, dataset="demo", data_root=None, category="disc", shots="1", seeds="0",
                      backbone="efficientnet_lite0", weights="", resolution="112", detector="anomalydino",
                      surrogate="score", attack="none", eps="8/255", calib=calibrators,
                      calib_fraction=0.3, options=[])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run_local(build_cells(request, registry), RunSettings(pixel_metrics=False, resamples=0),
                  tmp_path / f"{len(calibrators)}.csv", registry, SilentReporter(), lambda cell, row: None)
    return [str(w.message) for w in seen]


def test_default_calibrators_do_not_warn_where_plain_temperature_does(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTAD_CACHE", str(tmp_path / "cache"))
    default = inspect.signature(robustad.bench).parameters["calib"].default
    assert "temperature:platt" in default.split(",")
    assert any("separates" in message for message in caught("temperature", tmp_path))
    assert caught(default, tmp_path) == []
