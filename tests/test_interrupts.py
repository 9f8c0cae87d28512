"""Ctrl-C stops a run after the row being landed, even when Python swallowed its KeyboardInterrupt."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time

import pytest

from robustad import interrupts
from robustad.engine.executors import GridResult
from robustad.engine.runner import CellOutcome
from robustad.records import Cell
from robustad.results.leaderboard import Leaderboard, read_rows
from tests.boards import row


class RaisesSigintWhenCollected:
    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)  # its KeyboardInterrupt is raised inside __del__: printed and ignored


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_swallowed_by_a_finalizer_still_stops_the_run_after_the_row_lands(sigint_handler, tmp_path):
    RaisesSigintWhenCollected()
    gc.collect()
    assert interrupts.requested()
    out, finished = tmp_path / "board.csv", row(seed=0)
    cell = Cell("demo", "weave", "1", 0, "b", "", 64, "anomalydino", "score", "pgd", "2/255", "platt", 0.3)
    landed = []
    with pytest.raises(KeyboardInterrupt):
        GridResult().land(Leaderboard(out), CellOutcome(cell, row=finished), lambda _, r: landed.append(r))
    assert [r["cell_hash"] for r in read_rows(out)] == [finished["cell_hash"]] and landed == [finished]


def test_without_ctrl_c_landing_goes_on(sigint_handler, tmp_path):
    cell = Cell("demo", "weave", "1", 0, "b", "", 64, "anomalydino", "score", "pgd", "2/255", "platt", 0.3)
    result = GridResult()
    result.land(Leaderboard(tmp_path / "board.csv"), CellOutcome(cell, error="boom"), lambda *_: None)
    assert not interrupts.requested()
    assert [key for key, _ in result.failures] == [cell.key] and result.failures[0][1].endswith(": boom")


def test_a_second_ctrl_c_while_the_first_unwinds_is_not_raised_again(sigint_handler):
    cleaned = []
    with pytest.raises(KeyboardInterrupt):
        try:
            signal.raise_signal(signal.SIGINT)
        finally:
            signal.raise_signal(signal.SIGINT)  # 10 ms later, while the first one's cleanup runs
            cleaned.append(True)
    assert cleaned == [True] and interrupts.requested()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_after_a_swallowed_one_interrupts_again(sigint_handler):
    RaisesSigintWhenCollected()
    gc.collect()
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)


def test_once_settled_a_ctrl_c_is_not_raised(sigint_handler):
    interrupts.settle()
    signal.raise_signal(signal.SIGINT)


@pytest.mark.parametrize("presses", [2, 30])
def test_ctrl_c_pressed_again_every_10_ms_exits_130_without_a_traceback(tmp_path, presses):
    command = [sys.executable, "-m", "robustad", "bench", "--attack", "pgd", "--resolution", "64", "--out",
               tmp_path / "board.csv"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "COLUMNS": "200"})
    for line in process.stdout:
        if "cells ->" in line:
            break
    time.sleep(1.0)
    for _ in range(presses):
        process.send_signal(signal.SIGINT)
        time.sleep(0.01)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
