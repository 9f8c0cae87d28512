"""Impossible values in a leaderboard (an AUROC of 1.7, ci_low above ci_high, a seed ``x``): ``audit`` fails naming
them; ``leaderboard``, ``report`` and ``site`` warn once and leave their rows out of the means."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from robustad.errors import RobustadError
from robustad.metrics import IMAGE_METRICS, PIXEL_METRICS
from robustad.results.audit import run_checks
from robustad.results.frame import load_rows
from robustad.results.leaderboard import COLUMNS, LeaderboardWarning
from robustad.results.ranges import impossible
from robustad.results.schema import RANGES
from tests.boards import row, run_robustad, write_board

IMPOSSIBLE = [
    ("adv_auroc", "1.7"), ("adv_auroc", "-0.5"), ("adv_auroc", "inf"), ("adv_auroc", "nan"), ("clean_ece", "3"),
    ("adv_brier", "-1"), ("flag_tpr", "5"), ("adv_nll", "-0.1"), ("n_eval", "-3"), ("n_eval", "2.5"),
    ("eps", "abc"), ("eps", "0"), ("eps", "-1/255"), ("seed", "x"), ("evasion_rate", "-inf"),
    ("adv_auroc_ci_low", "0.9"),  # above its ci_high 0.5
]


def rows() -> list[dict[str, str]]:
    """Two seeds of one pgd cell with possible values (adv_auroc 0.2 and 0.4)."""
    common = {"adv_auroc_ci_low": "0.1", "adv_auroc_ci_high": "0.5", "n_eval": "20", "white_box": "True"}
    return [row(seed=seed, adv_auroc=auroc, **common) for seed, auroc in ((0, "0.2"), (1, "0.4"))]


@pytest.mark.parametrize("column, value", IMPOSSIBLE)
def test_each_impossible_value_is_found_in_its_row(column, value):
    good, bad = rows()
    bad[column] = value
    found = impossible(pd.DataFrame([good, bad]))
    assert found and found[0].line().startswith(f"row {bad['cell_hash']}: {column}={value!r}")
    assert {item.cell_hash for item in found} == {bad["cell_hash"]}


def test_audit_names_the_violation_and_load_rows_leaves_the_row_out_once(tmp_path):
    good, bad = rows()
    bad["clean_ece"] = "3"
    board = write_board(tmp_path / "b.csv", [good, bad])
    [check] = [r for r in run_checks(load_rows(board, [], keep_impossible=True)) if r.check == "declared-ranges"]
    assert [v.detail for v in check.violations] == [f"row {bad['cell_hash']}: clean_ece='3', expected a finite "
                                                    "number in [0, 1]"]
    with pytest.warns(LeaderboardWarning, match="1 row.s. hold impossible values") as caught:
        kept = load_rows(board, [])
    assert len(caught) == 1 and kept["cell_hash"].tolist() == [good["cell_hash"]]


def test_cli_audit_exits_1_and_leaderboard_warns_once_leaving_the_row_out_of_the_mean(tmp_path, monkeypatch,
                                                                                       capsys):
    good, bad = rows()
    bad["adv_auroc"] = "1.7"
    board = write_board(tmp_path / "b.csv", [good, bad])
    code, out, err = run_robustad(monkeypatch, capsys, "audit", board)
    assert code == 1 and f"FAIL declared-ranges: row {bad['cell_hash']}: adv_auroc='1.7'" in out
    code, out, err = run_robustad(monkeypatch, capsys, "leaderboard", board, "--format", "csv", "--columns",
                                  "adv_auroc")
    assert code == 0 and err.count("robustad: warning:") == 1 and "adv_auroc='1.7'" in err
    shown = pd.read_csv(io.StringIO(out))
    assert shown["adv_auroc_mean"].tolist() == [pytest.approx(0.2)]  # the good row's alone, not (0.2 + 0.4) / 2


def test_site_warns_and_builds_from_the_possible_rows(tmp_path, monkeypatch, capsys):
    good, bad = rows()
    bad["adv_auroc"] = "1.7"
    code, out, err = run_robustad(monkeypatch, capsys, "site", write_board(tmp_path / "b.csv", [good, bad]),
                                  "--out", tmp_path / "site")
    assert code == 0 and err.count("warning") == 1 and "adv_auroc='1.7'" in err
    assert "1.700" not in (tmp_path / "site" / "index.html").read_text()


def test_robustads_own_leaderboards_hold_no_impossible_value():
    boards = sorted((Path(__file__).resolve().parents[1] / "results").glob("*/leaderboard.csv"))
    assert len(boards) >= 4
    for board in boards:
        assert impossible(pd.read_csv(board, dtype=str, keep_default_na=False)) == []


def test_every_metric_column_has_a_declared_range():
    metric_columns = [c for c in COLUMNS if c.startswith(("clean_", "adv_")) and c.removeprefix("clean_")
                      .removeprefix("adv_").split("_ci_")[0] in (*IMAGE_METRICS, *PIXEL_METRICS)]
    assert metric_columns and not [c for c in metric_columns if c not in RANGES]
    assert RANGES["adv_entropy"] == (0.0, pytest.approx(0.6931471805599453))


def test_a_leaderboard_of_impossible_rows_only_is_one_line(tmp_path):
    board = write_board(tmp_path / "b.csv", [row(adv_auroc="2")])
    with pytest.warns(LeaderboardWarning), pytest.raises(RobustadError, match="every row holds impossible values"):
        load_rows(board, [])
