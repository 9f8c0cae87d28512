"""The second hostile round, engine side: values a row cannot hold are refused before work, plugin code cannot
change other cells' rows or lie its way into them, a plugin's failure costs only its own cells, and another
writer's files and locks are respected."""

from __future__ import annotations

import fcntl
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from robustad import CategoryData, DetectorOutput, Perturbed, hookimpl
from robustad.declaration import Request
from robustad.engine.executors import run_local
from robustad.engine.progress import SilentReporter
from robustad.engine.request import build_cells
from robustad.engine.settings import RunSettings
from robustad.errors import RobustadError
from robustad.plugins import get_registry
from robustad.results.leaderboard import Leaderboard, LeaderboardWarning, read_rows, row_text
from tests.test_engine_faults import TinyBackboneComponent, UpAttack
from tests.test_request import folder_dataset

BREAKS = ["\n", "\r", "\x0c", "\u2028", "\x85"]
STAGES = ("split", "fit", "clean", "pixel", "surrogate", "attack", "calib_metrics")
VOLATILE = ("timestamp", "cell_hash", *(f"t_{stage}_s" for stage in STAGES))


class Lines:
    """A dataset whose category names hold the line break ``BREAK`` (set per test)."""

    name, description = "lines", "categories with line breaks"
    BREAK = "\n"

    def categories(self, root):
        return ["part", f"bad{self.BREAK}name"]

    def load(self, root, category):
        return get_registry().get("dataset", "folder").create().load(root, "part")


class Raising:
    """A dataset raising ``ERROR`` in ``WHERE`` (set per test)."""

    name, description = "raising", "raises in categories or load"
    WHERE, ERROR = "categories", OSError("disk on fire")

    def categories(self, root):
        if self.WHERE == "categories":
            raise self.ERROR
        return ["part"]

    def load(self, root, category) -> CategoryData:
        raise self.ERROR


class Describes:
    """An attack whose ``describe()`` returns ``SETTINGS`` and whose members are ``MEMBERS`` (set per test)."""

    name, description = "describes", "describe() returns what the test sets"
    needs_surrogate = False
    SETTINGS: dict = {"steps": 1}
    MEMBERS: list | None = None
    RAISE_IN: str | None = None

    def __init__(self) -> None:
        if self.RAISE_IN == "init":
            raise OSError("cannot build")

    def perturb(self, target):
        return target.images

    def describe(self, eps):
        if self.RAISE_IN == "describe":
            raise OSError("describe failed")
        return self.SETTINGS

    def members(self):
        if self.RAISE_IN == "members":
            raise OSError("members failed")
        return self.MEMBERS or []


class InPlace:
    """Writes into the images it is given, then returns them."""

    name, description = "in_place", "modifies target.images in place"
    needs_surrogate = False

    def perturb(self, target):
        target.images.add_(target.eps).clamp_(0, 1)
        return target.images

    def describe(self, eps):
        return {"steps": 1}


class Liar:
    """Returns clean images with made-up scores."""

    name, description = "liar", "returns Perturbed with made-up scores"
    needs_surrogate = False

    def perturb(self, target):
        labels = target.labels.cpu().numpy()
        fake = DetectorOutput(np.where(labels == 1, -1e3, 1e3), np.zeros((len(labels), 1, 1)))
        return Perturbed(target.images, fake)

    def describe(self, eps):
        return {"steps": 1}


class Sorter:
    """A calibrator that sorts the score arrays it is given in place."""

    name, description = "sorter", "sorts its input in place"

    def fit(self, scores, labels):
        scores.sort()

    def predict(self, scores):
        scores.sort()
        return np.full(len(scores), 0.5)


class HostileBackbone(TinyBackboneComponent):
    name = "tiny_hostile"


class Up(UpAttack):
    name = "up_h"


class Hostile:
    @hookimpl
    def register_datasets(self, register):
        register(Lines)
        register(Raising)

    @hookimpl
    def register_backbones(self, register):
        register(HostileBackbone)

    @hookimpl
    def register_attacks(self, register):
        for attack in (Describes, InPlace, Liar, Up):
            register(attack)

    @hookimpl
    def register_calibrators(self, register):
        register(Sorter)


@pytest.fixture
def registry():
    registry = get_registry()
    if not registry.pm.has_plugin("hostile"):
        registry.add(Hostile(), "hostile", "robustad-hostile")
    return registry


def request(root, **changes) -> Request:
    fields = dict(dataset="folder", data_root=root, category="all", shots="1", seeds="0", backbone="tiny_hostile",
                  weights="", resolution="32", detector="anomalydino", surrogate="linear", attack="up_h",
                  eps="8/255", calib="platt", calib_fraction=0.3, options=[])
    return Request(noise_control=False, **{**fields, **changes})


def run(registry, root, out, **changes):
    cells = build_cells(request(root, **changes), registry)
    return run_local(cells, RunSettings(data_root=root, pixel_metrics=False, resamples=20), out, registry,
                     SilentReporter(), lambda cell, row: None)


def stable(rows: list[dict]) -> dict[tuple, dict]:
    return {(r["attack"], r["calibrator"]): {k: v for k, v in r.items() if k not in VOLATILE} for r in rows}


@pytest.fixture
def data(tmp_path):
    return folder_dataset(tmp_path / "data")


@pytest.mark.parametrize("line_break", BREAKS)
def test_a_category_name_with_a_line_break_is_refused_before_work(registry, data, line_break, monkeypatch):
    monkeypatch.setattr(Lines, "BREAK", line_break)
    with pytest.raises(RobustadError, match="category .* holds a line break"):
        build_cells(request(data, dataset="lines"), registry)


@pytest.mark.parametrize("field, value", [("attack", "up_h,u\rp"), ("calib", "pl\u2028att"),
                                          ("category", "part\x0cx")])
def test_a_list_value_with_a_line_break_is_refused_naming_the_option(registry, data, field, value):
    with pytest.raises(RobustadError, match="holds a line break"):
        build_cells(request(data, **{field: value}), registry)


@pytest.mark.parametrize("settings, message", [
    ({"steps": float("nan")}, "nan is not a finite number"), ({"alpha": float("inf")}, "inf is not a finite"),
    ({"members": "a\nb"}, "holds a line break"), ({"loss": ["ce"]}, "is a list"), ({"bogus": 1}, "unknown keys"),
])
def test_describe_values_a_row_cannot_hold_are_refused_before_work(registry, data, monkeypatch, settings, message):
    monkeypatch.setattr(Describes, "SETTINGS", settings)
    with pytest.raises(RobustadError, match=message) as error:
        build_cells(request(data, attack="describes"), registry)
    assert "attack 'describes' (plugin 'hostile'" in str(error.value)


@pytest.mark.parametrize("members, message", [(["noise\nfgsm"], "holds a line break"),
                                              ("noise", "expected a list of attack specs"),
                                              (["pgd", "pgd:20"], "name one attack with two settings")])
def test_bad_member_lists_are_refused_before_work(registry, data, monkeypatch, members, message):
    monkeypatch.setattr(Describes, "MEMBERS", members)
    with pytest.raises(RobustadError, match=message):
        build_cells(request(data, attack="describes"), registry)


@pytest.mark.parametrize("where, error", [("categories", OSError("disk on fire")), ("load", KeyError("part")),
                                          ("load", ValueError("bad layout")), ("categories", SystemError("x"))])
def test_a_dataset_raising_in_categories_or_load_is_one_line_naming_it(registry, data, monkeypatch, where, error):
    monkeypatch.setattr(Raising, "WHERE", where)
    monkeypatch.setattr(Raising, "ERROR", error)
    with pytest.raises(RobustadError, match=r"dataset 'raising' \(plugin 'hostile' from robustad-hostile\)") as got:
        build_cells(request(data, dataset="raising"), registry)
    assert "\n" not in str(got.value) and type(error).__name__ in str(got.value)


@pytest.mark.parametrize("stage", ["describe", "members", "init"])
def test_an_attack_failing_at_build_time_costs_only_its_own_cells(registry, data, tmp_path, monkeypatch, stage):
    cells = build_cells(request(data, attack="up_h,describes"), registry)
    monkeypatch.setattr(Describes, "RAISE_IN", stage)  # after the checks: as if it failed only at run time
    result = run_local(cells, RunSettings(data_root=data, pixel_metrics=False, resamples=20), tmp_path / "b.csv",
                       registry, SilentReporter(), lambda cell, row: None)
    assert [r["attack"] for r in read_rows(tmp_path / "b.csv")] == ["up_h"]
    [(_, message)] = result.failures
    assert "attack 'describes' (plugin 'hostile'" in message and "OSError" in message


def test_an_attack_writing_into_its_images_does_not_change_the_rows_beside_it(registry, data, tmp_path):
    run(registry, data, tmp_path / "alone.csv", attack="up_h", calib="platt")
    run(registry, data, tmp_path / "beside.csv", attack="in_place,up_h", calib="platt")
    alone, beside = stable(read_rows(tmp_path / "alone.csv")), stable(read_rows(tmp_path / "beside.csv"))
    assert beside[("up_h", "platt")] == alone[("up_h", "platt")]
    assert float(beside[("in_place", "platt")]["adv_auroc"]) == float(alone[("up_h", "platt")]["adv_auroc"])


def test_a_calibrator_writing_into_its_scores_fails_alone_and_changes_nothing_beside_it(registry, data, tmp_path):
    run(registry, data, tmp_path / "alone.csv", calib="platt")
    result = run(registry, data, tmp_path / "beside.csv", calib="sorter,platt")
    assert stable(read_rows(tmp_path / "beside.csv")) == stable(read_rows(tmp_path / "alone.csv"))
    assert result.failures and all("calibrator 'sorter'" in message for _, message in result.failures)
    assert all("read-only" in message for _, message in result.failures)


def test_an_attack_claiming_made_up_scores_is_not_believed(registry, data, tmp_path):
    result = run(registry, data, tmp_path / "board.csv", attack="liar,up_h")
    assert [r["attack"] for r in read_rows(tmp_path / "board.csv")] == ["up_h"]
    [(_, message)] = result.failures
    assert "attack 'liar'" in message and "not the detector's scores" in message


def test_the_row_text_rule_refuses_what_one_csv_field_on_one_line_cannot_hold():
    assert row_text("a", 0.1) == "0.1" and row_text("a", None) == "" and row_text("a", np.float32(2.0)) == "2.0"
    for bad in (float("nan"), float("-inf"), np.float64("nan")):
        with pytest.raises(RobustadError, match="column a: .* is not a finite number"):
            row_text("a", bad)
    for line_break in BREAKS:
        with pytest.raises(RobustadError, match="column b: .* holds a line break"):
            row_text("b", f"x{line_break}y")


def test_rows_with_other_separators_in_old_files_are_still_read(tmp_path):
    out = tmp_path / "board.csv"
    Leaderboard(out).append({"cell_hash": "a", "data_sha": "x", "timestamp": "2026-12-04T12:00:00+00:00"})
    with out.open("a", encoding="utf-8") as handle:  # a hand edit put U+2028 and a form feed inside a cell
        handle.write("b" + ",x\u2028y\x0c" * 3 + "," * (len(read_rows(out)[0]) - 4) + "\n")
    keys = [r["cell_hash"] for r in read_rows(out)]
    assert keys == ["a", "b"]


def test_a_glob_character_in_the_leaderboard_name_spares_other_writers_files(tmp_path):
    others = [tmp_path / ".board.csv.1234.tmp", tmp_path / ".x.csv.99.tmp"]
    for other in others:
        other.write_text("another writer's migration in progress")
    for name in ("*", "[b]*", "?"):
        assert Leaderboard(tmp_path / name).append({"cell_hash": "a", "data_sha": "x"})
    assert all(other.exists() for other in others)
    (tmp_path / ".*.4321.tmp").write_text("left by a killed writer of '*'")
    Leaderboard(tmp_path / "*").append({"cell_hash": "b", "data_sha": "x"})
    assert not (tmp_path / ".*.4321.tmp").exists() and all(other.exists() for other in others)


HOLDER = textwrap.dedent("""
    import fcntl, sys, time
    with open(sys.argv[1], "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.seek(0); lock.truncate(); lock.write("4242\\n"); lock.flush()
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def test_a_held_lock_is_waited_for_visibly_naming_its_holder(tmp_path, monkeypatch):
    out = tmp_path / "board.csv"
    monkeypatch.setattr("robustad.results.leaderboard.LOCK_NOTICE_S", 0.2)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "board.csv.lock"), "1.5"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    with pytest.warns(LeaderboardWarning, match=r"waiting for board.csv.lock: another robustad \(process 4242\)"):
        assert Leaderboard(out).append({"cell_hash": "a", "data_sha": "x"})
    assert time.monotonic() - started >= 1.0 and holder.wait(timeout=30) == 0
    assert [r["cell_hash"] for r in read_rows(out)] == ["a"]


def test_ctrl_c_ends_a_lock_wait(tmp_path, monkeypatch):
    lock_path = tmp_path / "board.csv.lock"
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        monkeypatch.setattr("robustad.results.leaderboard.stop_if_requested", _interrupt_after(0.3))
        with pytest.raises(KeyboardInterrupt):
            Leaderboard(tmp_path / "board.csv").append({"cell_hash": "a", "data_sha": "x"})
    assert not (tmp_path / "board.csv").exists() or not read_rows(tmp_path / "board.csv")


def _interrupt_after(seconds: float):
    deadline = time.monotonic() + seconds

    def stop() -> None:
        if time.monotonic() > deadline:
            raise KeyboardInterrupt

    return stop

