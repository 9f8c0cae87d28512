"""The leaderboard as a store at scale: constant-time appends, kills and concurrent writers at 100,000 rows, files
of earlier versions migrated with every value kept, and earlier grids resumed rather than recomputed."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from robustad.declaration import Request
from robustad.engine.executors import pending
from robustad.engine.request import build_cells
from robustad.plugins import get_registry
from robustad.results.leaderboard import COLUMNS, Leaderboard, LeaderboardWarning, read_rows

TIMESTAMP = "2026-12-04T12:00:00+00:00"
REPO = Path(__file__).resolve().parents[1]


def row(key: str, **values) -> dict:
    return {"cell_hash": key, "dataset": "demo", "category": "weave", "clean_auroc": 0.5, "data_sha": "x",
            "timestamp": TIMESTAMP, **values}


def write_rows(path: Path, count: int, header: tuple[str, ...] = COLUMNS) -> None:
    """``count`` rows written directly (the way a long-running grid would have left them)."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, lineterminator="\n", restval="", extrasaction="ignore")
        writer.writeheader()
        for index in range(count):
            writer.writerow(row(f"k{index}"))


def test_an_append_reads_only_what_was_added_since_it_last_looked(tmp_path, monkeypatch):
    out = tmp_path / "board.csv"
    write_rows(out, 2000)
    board = Leaderboard(out)
    assert board.holds("k1999") and not board.holds("new")
    read: list[int] = []
    real_parse = __import__("robustad.results.leaderboard", fromlist=["parse"]).parse

    def counting(path, start=0, header=None):
        contents = real_parse(path, start, header)
        read.append(len(contents.rows))
        return contents

    monkeypatch.setattr("robustad.results.leaderboard.parse", counting)
    assert board.append(row("new"))
    with out.open("a") as handle:  # another process lands a row meanwhile
        csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n", restval="").writerow(row("other"))
    assert board.holds("other") and not board.append(row("other"))
    assert max(read) <= 1  # never the 2,000 rows again, only the one or two lines appended
    assert [r["cell_hash"] for r in read_rows(out)][-2:] == ["new", "other"]


KILLED_WRITER = textwrap.dedent("""
    import sys, pathlib
    from robustad.results.leaderboard import Leaderboard
    board = Leaderboard(pathlib.Path(sys.argv[1]))
    board.refresh()
    print("ready", flush=True)
    index = 0
    while True:
        board.append({"cell_hash": f"new{index}", "clean_auroc": 0.5, "data_sha": "x",
                      "options": "x" * 20000, "timestamp": sys.argv[2]})
        index += 1
""")


def test_kill_9_during_appends_at_100000_rows_keeps_every_earlier_row(tmp_path):
    out = tmp_path / "board.csv"
    write_rows(out, 100_000)
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(out), TIMESTAMP], stdout=subprocess.PIPE,
                              text=True)
    assert writer.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    with open(out, "rb+") as handle:  # make sure the last row is cut, as a kill inside a write leaves it
        handle.seek(-7, os.SEEK_END)
        handle.truncate()
    assert Leaderboard(out).append(row("after"))
    keys = [r["cell_hash"] for r in read_rows(out)]
    assert keys[:100_000] == [f"k{i}" for i in range(100_000)]
    assert keys[-1] == "after" and len(keys) == len(set(keys))
    assert (tmp_path / "board.csv.damaged").read_text().count("\n") == 1


CONCURRENT_WRITER = textwrap.dedent("""
    import sys, pathlib
    from robustad.results.leaderboard import Leaderboard
    board = Leaderboard(pathlib.Path(sys.argv[1]))
    for index in range(int(sys.argv[3])):
        board.append({"cell_hash": f"{sys.argv[2]}{index}", "data_sha": "x", "timestamp": sys.argv[4]})
""")


def test_two_processes_appending_1000_rows_each_give_2000_distinct_rows(tmp_path):
    out = tmp_path / "board.csv"
    writers = [subprocess.Popen([sys.executable, "-c", CONCURRENT_WRITER, str(out), name, "1000", TIMESTAMP])
               for name in ("a", "b")]
    assert [w.wait(timeout=300) for w in writers] == [0, 0]
    keys = [r["cell_hash"] for r in read_rows(out)]
    assert len(keys) == 2000 and set(keys) == {f"{n}{i}" for n in "ab" for i in range(1000)}


def test_an_earlier_versions_file_is_migrated_once_with_every_value_kept(tmp_path):
    old_header = [c for c in COLUMNS if c not in ("clean_aupro", "data_sha", "protocol")][::-1] + ["old_metric"]
    out = tmp_path / "board.csv"
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(old_header)
        for index in range(3):
            writer.writerow([f"old{index}" if c == "cell_hash" else f"{c}-{index}" for c in old_header])
    original = out.read_bytes()
    [first, *_] = read_rows(out)  # read as it is: the column it lacks is empty, the one it adds kept
    assert first["clean_aupro"] == "" and first["old_metric"] == "old_metric-0" and first["seed"] == "seed-0"
    with pytest.warns(LeaderboardWarning, match="migrated"):
        assert Leaderboard(out).append(row("new"))
    assert (tmp_path / "board.csv.before-migration").read_bytes() == original
    rows = read_rows(out)
    assert [r["cell_hash"] for r in rows] == ["old0", "old1", "old2", "new"]
    for index, migrated in enumerate(rows[:3]):
        assert all(migrated[c] == f"{c}-{index}" for c in old_header if c != "cell_hash")
    header = next(csv.reader(out.open()))
    assert tuple(header[: len(COLUMNS)]) == COLUMNS and header[len(COLUMNS):] == ["old_metric"]
    assert Leaderboard(out).append(row("newer"))  # once: no second migration
    assert not (tmp_path / "board.csv.before-migration.2").exists()


def test_the_committed_grid_of_protocol_1_is_never_resumed_as_protocol_2_rows(mvtec_root):
    """results/bottle/leaderboard.csv was written at commit 7d3a6b4 under protocol 1 (before the clean image was
    kept and the default losses changed): no cell of results/bottle/run.sh as it runs today is taken for one of
    its rows, and no protocol-2 cell has a legacy key to be matched by."""
    board = Leaderboard(REPO / "results" / "bottle" / "leaderboard.csv")
    common = dict(dataset="mvtec", data_root=mvtec_root, category="bottle", shots="1",
                  backbone="efficientnet_lite0", weights="", resolution="224", detector="anomalydino",
                  calib_fraction=0.3)
    suite = dict(attack="fgsm,pgd,apgd,square,worstcase", eps="2/255,8/255",  # the noise control is added
                 calib="platt", options=["attack.apgd.steps=20", "attack.square.queries=50"])
    requests = [Request(seeds="0", surrogate="score", **common, **suite),
                Request(seeds="0", surrogate="score", round_8bit=True, **common, **suite),
                Request(seeds="0", surrogate="linear", **common, **suite),
                Request(seeds="0,1,2", surrogate="linear,score", attack="fgsm,pgd", eps="2/255,8/255",
                        calib="platt,isotonic,temperature,none", options=[], **common)]
    for request in requests:
        cells = build_cells(request, get_registry())
        todo, skipped = pending(cells, board)
        assert len(todo) == len(cells) > 0 and skipped == 0  # protocol 2 computes anew
        assert all(cell.legacy_key is None for cell in cells)


def test_images_replaced_by_others_of_the_same_size_change_the_key(tmp_path):
    from tests.test_request import REQUEST, folder_dataset

    data = folder_dataset(tmp_path / "data")
    [before] = build_cells(Request(**{**REQUEST.__dict__, "data_root": data}), get_registry())
    image = data / "part" / "test" / "good" / "000.png"
    replacement = data / "part" / "test" / "good" / "001.png"
    if image.stat().st_size != replacement.stat().st_size:  # same-size content is the point: pad both
        size = max(image.stat().st_size, replacement.stat().st_size)
        for path in (image, replacement):
            path.write_bytes(path.read_bytes().ljust(size, b"\0"))
        [before] = build_cells(Request(**{**REQUEST.__dict__, "data_root": data}), get_registry())
    image.write_bytes(replacement.read_bytes())
    [after] = build_cells(Request(**{**REQUEST.__dict__, "data_root": data}), get_registry())
    assert after.data_id == before.data_id  # names and sizes alike ...
    assert after.data_sha != before.data_sha and after.key != before.key  # ... and still another experiment
