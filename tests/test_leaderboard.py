"""The leaderboard CSV: atomic appends, resume keys, aggregation."""

import csv
import math

import pandas as pd
import pytest

from robustad.errors import RobustadError
from robustad.results.aggregate import aggregate
from robustad.results.frame import filter_rows
from robustad.results.leaderboard import COLUMNS, Leaderboard, read_rows


def row(key, **values):
    base = {"cell_hash": key, "dataset": "demo", "category": "weave", "shots": "1", "seed": 0, "backbone": "b",
            "resolution": 64, "detector": "d", "surrogate": "score", "attack": "fgsm", "eps": "2/255",
            "calibrator": "platt"}
    return {**base, **values}


def test_append_writes_header_once_and_keeps_every_row(tmp_path):
    out = tmp_path / "sub" / "board.csv"
    for i in range(3):
        Leaderboard(out).append(row(f"k{i}", clean_auroc=0.5 + i / 10, adv_auroc=None))
    with out.open(newline="") as handle:
        lines = list(csv.reader(handle))
    assert lines[0] == list(COLUMNS)
    assert len(lines) == 4
    assert {r["cell_hash"] for r in read_rows(out)} == {"k0", "k1", "k2"}
    rows = read_rows(out)
    assert float(rows[2]["clean_auroc"]) == 0.7 and rows[0]["adv_auroc"] == ""
    assert not list(tmp_path.glob("sub/.board.csv.*.tmp"))


def test_unknown_column_and_foreign_csv_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown leaderboard columns"):
        Leaderboard(tmp_path / "a.csv").append({"cell_hash": "x", "bogus": 1})
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("a,b\n1,2\n")
    with pytest.raises(RobustadError, match="not a leaderboard"):
        {r["cell_hash"] for r in read_rows(foreign)}


def test_aggregate_mean_std_over_seeds_then_mean_over_categories():
    rows = pd.DataFrame([
        row("a", category="weave", seed=0, clean_auroc=0.8),
        row("b", category="weave", seed=1, clean_auroc=1.0),
        row("c", category="disc", seed=0, clean_auroc=0.6),
        row("d", category="disc", seed=1, clean_auroc=0.6),
    ])
    summary = aggregate(rows)
    assert len(summary) == 1
    line = summary.iloc[0]
    assert line["clean_auroc_mean"] == pytest.approx((0.9 + 0.6) / 2)
    assert line["clean_auroc_std"] == pytest.approx((math.sqrt(0.02) + 0.0) / 2)
    assert line["categories"] == 2 and line["seeds"] == 2
    assert len(filter_rows(rows, ["category=disc"])) == 2
    with pytest.raises(RobustadError, match="--where 'nope=1'"):
        filter_rows(rows, ["nope=1"])
