"""Ctrl-C stops a run after the row being landed, even when Python swallowed its KeyboardInterrupt."""

from __future__ import annotations

import gc
import signal

import pytest

from robustad import interrupts
from robustad.engine.executors import GridResult
from robustad.engine.runner import CellOutcome
from robustad.records import Cell
from robustad.results.leaderboard import read_rows
from tests.boards import row


class RaisesSigintWhenCollected:
    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)  # its KeyboardInterrupt is raised inside __del__: printed and ignored


@pytest.fixture
def sigint_handler():
    interrupts.install()
    yield
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_swallowed_by_a_finalizer_still_stops_the_run_after_the_row_lands(sigint_handler, tmp_path):
    RaisesSigintWhenCollected()
    gc.collect()
    assert interrupts.requested()
    out, finished = tmp_path / "board.csv", row(seed=0)
    cell = Cell("demo", "weave", "1", 0, "b", "", 64, "anomalydino", "score", "pgd", "2/255", "platt", 0.3)
    landed = []
    with pytest.raises(KeyboardInterrupt):
        GridResult().land(out, CellOutcome(cell, row=finished), lambda _, r: landed.append(r))
    assert [r["cell_hash"] for r in read_rows(out)] == [finished["cell_hash"]] and landed == [finished]


def test_without_ctrl_c_landing_goes_on(sigint_handler, tmp_path):
    cell = Cell("demo", "weave", "1", 0, "b", "", 64, "anomalydino", "score", "pgd", "2/255", "platt", 0.3)
    result = GridResult()
    result.land(tmp_path / "board.csv", CellOutcome(cell, error="boom"), lambda *_: None)
    assert not interrupts.requested()
    assert [key for key, _ in result.failures] == [cell.key] and result.failures[0][1].endswith(": boom")
