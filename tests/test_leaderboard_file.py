"""The leaderboard file under damage, concurrency, links and kills: nothing lost, nothing silently wrong."""

from __future__ import annotations

import csv
import os
import stat
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from robustad.errors import RobustadError
from robustad.results.leaderboard import (
    COLUMNS,
    Leaderboard,
    LeaderboardWarning,
    check_writable,
    read_rows,
)

TIMESTAMP = "2026-11-29T12:00:00+00:00"


def row(key: str, **values) -> dict:
    return {"cell_hash": key, "dataset": "demo", "category": "weave", "clean_auroc": 0.5, "timestamp": TIMESTAMP,
            **values}


def field_counts(path) -> set[int]:
    with path.open(newline="") as handle:
        return {len(line) for line in csv.reader(handle)}


def test_a_last_line_without_newline_is_kept_and_not_glued_to(tmp_path):
    out = tmp_path / "board.csv"
    Leaderboard(out).append(row("a"))
    out.write_bytes(out.read_bytes().rstrip(b"\n"))  # an editor saved it without the final newline
    assert Leaderboard(out).append(row("b"))
    assert [r["cell_hash"] for r in read_rows(out)] == ["a", "b"]
    assert field_counts(out) == {len(COLUMNS)}
    assert list(pd.read_csv(out)["cell_hash"]) == ["a", "b"]


def test_a_truncated_last_line_is_reported_and_kept_aside(tmp_path):
    out = tmp_path / "board.csv"
    Leaderboard(out).append(row("a"))
    Leaderboard(out).append(row("b"))
    whole = out.read_bytes()
    out.write_bytes(whole[: len(whole) - 40])  # a write cut short inside row b
    with pytest.warns(LeaderboardWarning, match="1 damaged line"):
        assert [r["cell_hash"] for r in read_rows(out)] == ["a"]
    with pytest.warns(LeaderboardWarning, match="moved to"):
        assert Leaderboard(out).append(row("c"))
    assert [r["cell_hash"] for r in read_rows(out)] == ["a", "c"]
    assert field_counts(out) == {len(COLUMNS)}
    aside = (tmp_path / "board.csv.damaged").read_text()
    assert aside.startswith("b,") and aside.count("\n") == 1


def test_a_key_already_present_is_not_written_twice(tmp_path):
    out = tmp_path / "board.csv"
    assert Leaderboard(out).append(row("a"))
    assert not Leaderboard(out).append(row("a", clean_auroc=0.9))
    assert [r["clean_auroc"] for r in read_rows(out)] == ["0.5"]


WRITER = textwrap.dedent("""
    import pathlib, sys
    from robustad.results.leaderboard import Leaderboard
    for index in range(int(sys.argv[2])):
        Leaderboard(pathlib.Path(sys.argv[1])).append({"cell_hash": f"k{index}", "timestamp": sys.argv[3]})
""")


def test_two_processes_landing_the_same_cells_write_each_row_once(tmp_path):
    out = tmp_path / "board.csv"
    command = [sys.executable, "-c", WRITER, str(out), "40", TIMESTAMP]
    writers = [subprocess.Popen(command) for _ in range(2)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    keys = [r["cell_hash"] for r in read_rows(out)]
    assert sorted(keys) == sorted(f"k{i}" for i in range(40))
    assert field_counts(out) == {len(COLUMNS)}


def test_a_symlinked_leaderboard_is_updated_through_the_link_and_keeps_its_mode(tmp_path):
    target = tmp_path / "real" / "board.csv"
    target.parent.mkdir()
    Leaderboard(target).append(row("a"))
    os.chmod(target, 0o644)
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    (target.parent / ".board.csv.1234.tmp").write_text("left by a killed writer")
    Leaderboard(link).append(row("b"))
    assert link.is_symlink() and {r["cell_hash"] for r in read_rows(target)} == {"a", "b"}
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert not list(target.parent.glob(".board.csv.*.tmp"))


def test_a_new_leaderboard_gets_the_usual_file_mode(tmp_path):
    out = tmp_path / "board.csv"
    Leaderboard(out).append(row("a"))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask


def test_outputs_are_checked_before_any_work(tmp_path):
    with pytest.raises(RobustadError, match="is a folder"):
        check_writable(tmp_path)
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("a file where a folder should be")
    with pytest.raises(RobustadError, match="cannot write in"):
        check_writable(not_a_folder / "board.csv")
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("a,b\n1,2\n")
    with pytest.raises(RobustadError, match="not a leaderboard"):
        check_writable(foreign)


def test_a_line_with_an_extra_field_is_moved_aside_by_a_store_that_saw_it_before(tmp_path):
    """The bench's store reads the file once (which cells are done), then appends: the damaged line it saw then is
    moved to ``.damaged`` as the warning says, so its cell's recomputed row is the file's only line for it."""
    out = tmp_path / "board.csv"
    Leaderboard(out).append(row("a"))
    Leaderboard(out).append(row("b"))
    lines = out.read_text().splitlines()
    out.write_text("\n".join([lines[0], lines[1], lines[2] + ",extra"]) + "\n")  # row b gains a field
    store = Leaderboard(out)
    assert not store.holds("b") and store.holds("a")  # read once, as the runner does before any work
    with pytest.warns(LeaderboardWarning, match="1 damaged line"):
        assert store.append(row("b", clean_auroc=0.75))
    frame = pd.read_csv(out)
    assert frame["cell_hash"].tolist() == ["a", "b"] and frame["clean_auroc"].tolist() == [0.5, 0.75]
    assert (tmp_path / "board.csv.damaged").read_text() == lines[2] + ",extra\n"
