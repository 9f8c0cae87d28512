"""A plugin's SystemExit or KeyboardInterrupt during a run is that plugin's failure; the user's Ctrl-C is not."""

from __future__ import annotations

import re
import signal

import numpy as np
import pytest

from robustad import hookimpl, interrupts
from robustad.declaration import Request
from robustad.engine.executors import run_local
from robustad.engine.guard import ComponentError, blame
from robustad.engine.progress import SilentReporter
from robustad.engine.request import build_cells
from robustad.engine.settings import RunSettings
from robustad.plugins import get_registry
from robustad.results.leaderboard import read_rows
from tests.boards import run_robustad
from tests.conftest import TinyBackbone
from tests.test_request import folder_dataset

STOPS = {"exit0": SystemExit(0), "exit_text": SystemExit("bye"), "ctrl_c": KeyboardInterrupt()}


def stopping_calibrator(how: str) -> type:
    class Stops:
        name = f"stops_{how}"
        description = f"raises {type(STOPS[how]).__name__} in fit"

        def fit(self, scores, labels):
            raise STOPS[how]

        def predict(self, scores):
            return np.full(len(scores), 0.5)

    return Stops


class StopsInPerturb:
    name = "stops_in_perturb"
    description = "raises SystemExit(0) in perturb"
    needs_surrogate = False

    def perturb(self, target):
        raise SystemExit(0)

    def describe(self, eps):
        return {"steps": 1}


class UpAttack:
    name = "up_again"
    description = "adds eps everywhere"
    needs_surrogate = False

    def perturb(self, target):
        return (target.images + target.eps).clamp(0, 1)

    def describe(self, eps):
        return {"steps": 1}


class StopsBuilding(TinyBackbone):
    name = "stops_building"

    def __init__(self, *, weights: str | None = None, device: str = "cpu") -> None:
        raise SystemExit(3)


class CtrlCBackbone(TinyBackbone):
    """Its forward pass is where the user presses Ctrl-C."""

    name = "user_presses_ctrl_c"

    def __init__(self, *, weights: str | None = None, device: str = "cpu") -> None:
        super().__init__()

    def forward(self, x):
        signal.raise_signal(signal.SIGINT)
        return super().forward(x)


class ExitingWeightsId(TinyBackbone):
    """Its ``weights_id``, which the runner reads for the row outside any guarded call, exits."""

    name = "exits_in_weights_id"

    def __init__(self, *, weights: str | None = None, device: str = "cpu") -> None:
        super().__init__()

    def __getattribute__(self, name):
        if name == "weights_id":
            raise SystemExit(0)
        return super().__getattribute__(name)


class TinyOk(TinyBackbone):
    name = "tiny_fine"

    def __init__(self, *, weights: str | None = None, device: str = "cpu") -> None:
        super().__init__()


class StopsDescribing(UpAttack):
    name = "stops_in_describe"

    def describe(self, eps):
        raise SystemExit(0)


class StopsListingMembers(UpAttack):
    name = "stops_in_members"

    def members(self):
        raise KeyboardInterrupt


class StopsReading:
    """A dataset that exits while its categories are listed (``where='categories'``) or one is read."""

    name = "stops_reading"
    description = "raises SystemExit(0) in categories or load"

    def __init__(self, *, where: str = "load") -> None:
        self.where = where

    def categories(self, root):
        if self.where == "categories":
            raise SystemExit(0)
        return ["part"]

    def load(self, root, category):
        raise SystemExit(0)


class StoppingPlugins:
    @hookimpl
    def register_calibrators(self, register):
        for how in STOPS:
            register(stopping_calibrator(how))

    @hookimpl
    def register_attacks(self, register):
        register(StopsInPerturb)
        register(UpAttack)
        register(StopsDescribing)
        register(StopsListingMembers)

    @hookimpl
    def register_datasets(self, register):
        register(StopsReading)

    @hookimpl
    def register_backbones(self, register):
        register(StopsBuilding)
        register(CtrlCBackbone)
        register(ExitingWeightsId)
        register(TinyOk)


@pytest.fixture
def registry():
    registry = get_registry()
    if not registry.pm.has_plugin("stopping"):
        registry.add(StoppingPlugins(), "stopping", "robustad-stopping")
    return registry


def run(registry, tmp_path, **request):
    root = folder_dataset(tmp_path / "data")
    fields = dict(dataset="folder", data_root=root, category="part", shots="1", seeds="0", backbone="tiny_fine",
                  weights="", resolution="32", detector="anomalydino", surrogate="linear", attack="up_again",
                  eps="8/255", calib="platt", calib_fraction=0.3, options=[])
    cells = build_cells(Request(noise_control=False, **{**fields, **request}), registry)
    out = tmp_path / "board.csv"
    result = run_local(cells, RunSettings(data_root=root, pixel_metrics=False, resamples=0), out, registry,
                       SilentReporter(), lambda cell, row: None)
    return result, (read_rows(out) if out.exists() else [])


@pytest.mark.parametrize("how, message", [("exit0", "SystemExit: 0"), ("exit_text", "SystemExit: bye"),
                                          ("ctrl_c", "KeyboardInterrupt")])
def test_a_calibrator_that_exits_fails_its_cells_only(registry, sigint_handler, tmp_path, how, message):
    result, rows = run(registry, tmp_path, calib=f"stops_{how},platt")
    assert [r["calibrator"] for r in rows] == ["platt"]
    [(_, failure)] = result.failures
    assert f"calibrator 'stops_{how}' (plugin 'stopping' from robustad-stopping): {message}" in failure
    assert not interrupts.requested()


def test_an_attack_that_exits_fails_its_cells_only(registry, sigint_handler, tmp_path):
    result, rows = run(registry, tmp_path, attack="stops_in_perturb,up_again")
    assert [r["attack"] for r in rows] == ["up_again"]
    [(_, failure)] = result.failures
    assert "attack 'stops_in_perturb' (plugin 'stopping' from robustad-stopping): SystemExit: 0" in failure


def test_a_backbone_that_exits_while_built_fails_its_group_only(registry, sigint_handler, tmp_path):
    result, rows = run(registry, tmp_path, backbone="stops_building,tiny_fine")
    assert [r["backbone"] for r in rows] == ["tiny_fine"]
    [(_, failure)] = result.failures
    assert "backbone 'stops_building' (plugin 'stopping' from robustad-stopping): SystemExit: 3" in failure


def test_the_users_ctrl_c_inside_a_component_still_stops_the_run(registry, sigint_handler, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run(registry, tmp_path, backbone="user_presses_ctrl_c")
    assert interrupts.requested()


def test_without_the_handler_every_keyboard_interrupt_counts_as_the_users(registry):
    """A Python caller that did not install the handler gets Python's behaviour: Ctrl-C stops it."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    component = registry.get("calibrator", "platt")
    with pytest.raises(KeyboardInterrupt), blame(component):
        raise KeyboardInterrupt
    with pytest.raises(ComponentError, match="SystemExit: 2"), blame(component):
        raise SystemExit(2)


def test_on_the_command_line_an_exiting_calibrator_is_one_failed_cell_line(registry, sigint_handler, tmp_path,
                                                                          monkeypatch, capsys):
    root = folder_dataset(tmp_path / "data")
    code, _, err = run_robustad(monkeypatch, capsys, "bench", "--dataset", "folder", "--data-root", root,
                                "--backbone", "tiny_fine", "--resolution", "32", "--attack", "none",
                                "--calib", "stops_exit0,platt", "--resamples", "0", "--out", tmp_path / "board.csv")
    assert code == 1 and "Traceback" not in err
    [failure] = [line for line in err.splitlines() if "cell failed" in line]
    assert "calibrator 'stops_exit0'" in failure and "SystemExit: 0" in failure
    assert [r["calibrator"] for r in read_rows(tmp_path / "board.csv")] == ["platt"]


STOPPED_READING = "dataset 'stops_reading' (plugin 'stopping' from robustad-stopping): SystemExit: 0"


@pytest.mark.parametrize("changes, message", [
    ({"dataset": "stops_reading"}, STOPPED_READING),
    ({"dataset": "stops_reading", "options": ["dataset.stops_reading.where=categories"]}, STOPPED_READING),
    ({"attack": "stops_in_describe"}, "attack 'stops_in_describe' (plugin 'stopping' from robustad-stopping): "
                                       "SystemExit: 0"),
    ({"attack": "stops_in_members"}, "attack 'stops_in_members' (plugin 'stopping' from robustad-stopping): "
                                      "KeyboardInterrupt"),
])
def test_a_plugin_that_exits_while_cells_are_built_is_one_line(registry, sigint_handler, tmp_path, changes, message):
    with pytest.raises(ComponentError, match=re.escape(message)):
        run(registry, tmp_path, **changes)


def test_on_the_command_line_a_dataset_that_exits_is_one_line_and_exit_2(registry, sigint_handler, tmp_path,
                                                                        monkeypatch, capsys):
    code, out, err = run_robustad(monkeypatch, capsys, "bench", "--dataset", "stops_reading", "--attack", "none",
                                  "--out", tmp_path / "board.csv")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "dataset 'stops_reading'" in err and "SystemExit: 0" in err and "cells" not in out


def test_a_plugin_that_exits_outside_its_guarded_calls_fails_its_group_only(registry, sigint_handler, tmp_path):
    result, rows = run(registry, tmp_path, backbone="exits_in_weights_id,tiny_fine")
    assert [r["backbone"] for r in rows] == ["tiny_fine"]
    [(_, failure)] = result.failures
    assert "exits_in_weights_id" in failure and failure.endswith("SystemExit: 0")
