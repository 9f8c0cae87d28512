"""Output targets are checked up front as files (a symlink loop, a read-only leaderboard), and the lock wait has a
limit after which one line names the holder."""

from __future__ import annotations

import fcntl
import os

import pytest

from robustad.errors import RobustadError
from robustad.plugins import get_registry
from robustad.results.leaderboard import Leaderboard, LockTimeout, check_writable, read_rows
from tests.boards import row, run_robustad, write_board


def test_an_out_that_is_a_symlink_to_itself_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    out = tmp_path / "self.csv"
    out.symlink_to(out)
    code, stdout, err = run_robustad(monkeypatch, capsys, "bench", "--attack", "none", "--out", out)
    assert code == 2 and err.count("\n") == 1 and "is a symlink that cannot be followed" in err
    assert "cells" not in stdout


def test_a_read_only_leaderboard_in_a_writable_folder_is_refused_before_any_work(tmp_path):
    board = write_board(tmp_path / "board.csv", [row()])
    os.chmod(board, 0o444)
    with pytest.raises(RobustadError, match="exists and is read-only"):
        check_writable(board)
    os.chmod(board, 0o644)
    (tmp_path / "board.csv.lock").write_text("")
    os.chmod(tmp_path / "board.csv.lock", 0o444)
    with pytest.raises(RobustadError, match="board.csv.lock exists and is read-only"):
        check_writable(board)


def test_a_site_out_that_is_a_symlink_loop_is_one_line(tmp_path, monkeypatch, capsys):
    out = tmp_path / "site"
    out.symlink_to(out)
    code, _, err = run_robustad(monkeypatch, capsys, "site", write_board(tmp_path / "b.csv", [row()]), "--out", out)
    assert code == 2 and "symlink that cannot be followed" in err


def test_the_lock_wait_gives_up_after_its_limit_naming_the_holder(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTAD_LOCK_TIMEOUT", "0.3")
    with open(tmp_path / "board.csv.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write("4242\n")
        lock.flush()
        with pytest.raises(LockTimeout, match=r"gave up after 0.3 s .* process 4242 holds it"):
            Leaderboard(tmp_path / "board.csv").append({"cell_hash": "a", "data_sha": "x"})
    assert not (tmp_path / "board.csv").exists() or not read_rows(tmp_path / "board.csv")


@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan", "inf"])
def test_a_bad_lock_timeout_is_refused_up_front(tmp_path, monkeypatch, value):
    monkeypatch.setenv("ROBUSTAD_LOCK_TIMEOUT", value)
    with pytest.raises(RobustadError, match=f"ROBUSTAD_LOCK_TIMEOUT='{value}': expected a number of seconds > 0"):
        check_writable(tmp_path / "board.csv")


def test_a_run_stops_at_the_first_lock_timeout(tmp_path, monkeypatch):
    from tests.test_hostile_rows import Hostile, run
    from tests.test_request import folder_dataset

    registry = get_registry()
    if not registry.pm.has_plugin("hostile"):
        registry.add(Hostile(), "hostile", "robustad-hostile")
    monkeypatch.setenv("ROBUSTAD_LOCK_TIMEOUT", "0.3")
    with open(tmp_path / "board.csv.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write("4242\n")
        lock.flush()
        with pytest.raises(LockTimeout, match="process 4242 holds it"):
            run(registry, folder_dataset(tmp_path / "data"), tmp_path / "board.csv", attack="up_h")
