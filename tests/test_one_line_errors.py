"""Hostile files and folders: each is one ``robustad: error:`` line naming it and exit code 2, never a traceback."""

from __future__ import annotations

import errno
import os
import pathlib
import shutil
import warnings

import pytest

from robustad.results.leaderboard import Leaderboard, read_rows
from tests.boards import row, run_robustad, write_board
from tests.conftest import run_cli
from tests.test_request import folder_dataset

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
ROOT_READS_ANYTHING = "runs as root, where chmod 000 does not stop reading (the monkeypatched case covers it)"


def one_error_line(code: int, err: str, *names: object) -> str:
    """Check the exit code 2 and a single ``robustad: error:`` line naming every one of ``names``."""
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("robustad: error: "), err
    for name in names:
        assert str(name) in err, err
    return err


@pytest.fixture
def board_csv(tmp_path):
    return write_board(tmp_path / "board.csv", [row(seed=0, adv_auroc=0.3), row(seed=1, adv_auroc=0.4)])


def bench_folder(monkeypatch, capsys, root, tmp_path, *extra):
    return run_robustad(monkeypatch, capsys, "bench", "--dataset", "folder", "--data-root", root, "--attack", "none",
                        "--calib", "platt", "--resolution", "32", "--out", tmp_path / "out" / "board.csv", *extra)


@pytest.mark.parametrize("unreadable", ["data", "data/part/train/good", "data/part/test", "data/part/test/bad",
                                        "data/part/test/good"])
def test_a_folder_that_cannot_be_listed_is_one_line_naming_it(tmp_path, monkeypatch, capsys, unreadable):
    root = folder_dataset(tmp_path / "data")
    (root / "part" / "ground_truth" / "bad" / "000_mask.png").rename(root / "part" / "ground_truth" / "bad" /
                                                                      "000_mask.bmp")  # found by listing its folder
    blocked = tmp_path / unreadable
    listing = pathlib.Path.iterdir

    def iterdir(folder):
        if folder == blocked:
            raise PermissionError(errno.EACCES, "Permission denied", str(folder))
        return listing(folder)

    monkeypatch.setattr(pathlib.Path, "iterdir", iterdir)
    code, out, err = bench_folder(monkeypatch, capsys, root, tmp_path)
    one_error_line(code, err, f"cannot list folder {blocked}: permission denied")
    assert "cells" not in out


@pytest.mark.skipif(AS_ROOT, reason=ROOT_READS_ANYTHING)
@pytest.mark.parametrize("unreadable", ["part", "part/test"])
def test_a_chmod_000_folder_is_one_line(tmp_path, unreadable):
    root = folder_dataset(tmp_path / "data")
    (root / unreadable).chmod(0)
    try:
        result = run_cli("bench", "--dataset", "folder", "--data-root", root, "--attack", "none",
                         "--out", tmp_path / "board.csv")
    finally:
        (root / unreadable).chmod(0o755)
    one_error_line(result.returncode, result.stderr)


def published_file(tmp_path, kind: str, board_csv) -> pathlib.Path:
    path = tmp_path / f"published-{kind}"
    if kind == "folder":
        path.mkdir()
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 8)
    elif kind == "png":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "leaderboard":
        shutil.copy(board_csv, path)
    elif kind == "ragged":
        path.write_text('source,citation\n"a,b\n')
    elif kind == "no citation":
        path.write_text("source,dataset,category,shots,backbone,resolution,detector\nx,mvtec,bottle,1,b,224,d\n")
    return path


@pytest.mark.parametrize("kind, message", [
    ("folder", "is not a file"), ("binary", "cannot be read as CSV text"), ("png", "cannot be read as CSV text"),
    ("empty", "is empty"), ("leaderboard", "lacks the column(s) source, citation"),
    ("ragged", "cannot be read as CSV text"), ("no citation", "lacks the column(s) citation"),
])
def test_published_that_is_no_published_file_is_one_line_before_any_table(tmp_path, monkeypatch, capsys, board_csv,
                                                                          kind, message):
    published = published_file(tmp_path, kind, board_csv)
    code, out, err = run_robustad(monkeypatch, capsys, "leaderboard", board_csv, "--published", published)
    one_error_line(code, err, f"--published {published}", message, "expected a CSV of published reference rows")
    assert out == ""


@pytest.mark.parametrize("below", ["a_file/report", "a_file/deeper/still/report"])
def test_report_out_below_a_file_is_one_line(tmp_path, monkeypatch, capsys, board_csv, below):
    (tmp_path / "a_file").write_text("not a folder")
    out = tmp_path / below
    code, _, err = run_robustad(monkeypatch, capsys, "report", board_csv, "--out", out)
    one_error_line(code, err, f"--out {out} lies below the file {tmp_path / 'a_file'}")


def test_report_out_in_a_read_only_folder_is_one_line(tmp_path, monkeypatch, capsys, board_csv):
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    writable = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: path != read_only and writable(path, mode))
    code, _, err = run_robustad(monkeypatch, capsys, "report", board_csv, "--out", read_only / "report")
    one_error_line(code, err, f"cannot write in {read_only} (read-only)")


@pytest.mark.skipif(AS_ROOT, reason=ROOT_READS_ANYTHING)
def test_report_out_in_a_chmod_555_folder_is_one_line(tmp_path, board_csv):
    read_only = tmp_path / "read_only"
    read_only.mkdir(mode=0o555)
    result = run_cli("report", board_csv, "--out", read_only / "report")
    one_error_line(result.returncode, result.stderr, "read-only")


def test_report_that_cannot_be_written_meanwhile_is_one_line(tmp_path, monkeypatch, capsys, board_csv):
    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(pathlib.Path, "mkdir", full)
    code, _, err = run_robustad(monkeypatch, capsys, "report", board_csv, "--out", tmp_path / "report")
    one_error_line(code, err, f"--out {tmp_path / 'report'}: cannot write the report", "No space left on device")


def test_save_scores_below_a_file_is_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    root = folder_dataset(tmp_path / "data")
    (tmp_path / "a_file").write_text("")
    code, out, err = bench_folder(monkeypatch, capsys, root, tmp_path, "--save-scores", tmp_path / "a_file" / "s")
    one_error_line(code, err, f"--save-scores {tmp_path / 'a_file' / 's'} lies below the file")
    assert "cells" not in out


def test_a_200_kb_cell_reads_and_appends(tmp_path, monkeypatch, capsys):
    huge = row(seed=0, adv_auroc=0.3, options='{"attack.pgd": {"note": "' + "x" * 200_000 + '"}}')
    path = write_board(tmp_path / "board.csv", [huge, row(seed=1, adv_auroc=0.4)])
    assert [len(r["options"]) for r in read_rows(path)] == [len(huge["options"]), 2]
    assert Leaderboard(path).append({**row(seed=2, adv_auroc=0.5), "timestamp": "2026-01-01T00:00:00+00:00"})
    assert len(read_rows(path)) == 3
    for command in ("leaderboard", "audit"):
        code, _, err = run_robustad(monkeypatch, capsys, command, path)
        assert code in (0, 1) and "Traceback" not in err and "field limit" not in err, err


def damaged(board_csv):
    with board_csv.open("a") as handle:
        handle.write("cut,short")
    return board_csv


@pytest.mark.parametrize("command", ["leaderboard", "audit", "report"])
def test_warnings_made_errors_are_one_line(tmp_path, monkeypatch, capsys, board_csv, command):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        extra = ("--out", tmp_path / "report") if command == "report" else ()
        code, _, err = run_robustad(monkeypatch, capsys, command, damaged(board_csv), *extra)
    one_error_line(code, err, "LeaderboardWarning", "damaged line(s) left out")


def test_pythonwarnings_error_with_a_damaged_leaderboard_is_one_line(board_csv):
    result = run_cli("leaderboard", damaged(board_csv), env={"PYTHONWARNINGS": "error"})
    one_error_line(result.returncode, result.stderr, "damaged line(s) left out")


@pytest.mark.parametrize("keep", [33, 45, 60])
@pytest.mark.parametrize("which", ["000", "005"])
def test_a_mask_cut_short_is_one_line_naming_it_before_any_work(tmp_path, monkeypatch, capsys, keep, which):
    """Whichever split the image lands in (only eval masks are read by a run), its damaged mask is refused."""
    root = folder_dataset(tmp_path / "data")
    mask = root / "part" / "ground_truth" / "bad" / f"{which}_mask.png"
    mask.write_bytes(mask.read_bytes()[:keep])
    code, out, err = bench_folder(monkeypatch, capsys, root, tmp_path, "--no-pixel-metrics")
    one_error_line(code, err, mask)
    assert "cells" not in out


@pytest.mark.parametrize("args", [
    ["leaderboard", "{long}"], ["audit", "{long}"], ["leaderboard", "{board}", "--published", "{long}"],
    ["report", "{board}", "--out", "{long}"], ["report", "{board}", "--out", "{tmp}/r", "--scores", "{long}"],
    ["bench", "--attack", "none", "--out", "{long}/board.csv"],
    ["bench", "--attack", "none", "--out", "{tmp}/b.csv", "--save-scores", "{long}"],
])
def test_a_path_the_file_system_refuses_is_one_line(tmp_path, monkeypatch, capsys, board_csv, args):
    long = tmp_path / ("x" * 300)  # longer than any file system allows a name to be: ENAMETOOLONG
    args = [arg.format(long=long, board=board_csv, tmp=tmp_path) for arg in args]
    code, out, err = run_robustad(monkeypatch, capsys, *args)
    one_error_line(code, err, "File name too long")
    assert "cells" not in out


@pytest.mark.parametrize("unreadable", ["part/train/good/001.png", "part/test/good/003.png",
                                        "part/ground_truth/bad/002_mask.png"])
def test_an_image_or_mask_that_cannot_be_read_is_one_line_before_any_work(tmp_path, monkeypatch, capsys,
                                                                         unreadable):
    root = folder_dataset(tmp_path / "data")
    blocked = root / unreadable
    readable = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: pathlib.Path(path) != blocked and readable(path, mode))
    code, out, err = bench_folder(monkeypatch, capsys, root, tmp_path)
    one_error_line(code, err, f"cannot read {blocked} (permission denied)")
    assert "cells" not in out


@pytest.mark.skipif(AS_ROOT, reason=ROOT_READS_ANYTHING)
def test_a_chmod_000_image_is_one_line(tmp_path):
    root = folder_dataset(tmp_path / "data")
    (root / "part" / "test" / "good" / "003.png").chmod(0)
    result = run_cli("bench", "--dataset", "folder", "--data-root", root, "--attack", "none",
                     "--out", tmp_path / "board.csv")
    one_error_line(result.returncode, result.stderr, "003.png")
