"""``robustad leaderboard``: an 80-column table with no value cut, chosen columns, intervals and script formats,
checked against means computed here with pandas from the real bottle leaderboard."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from robustad.results.frame import load_rows
from robustad.results.tables import print_table, summarise, summary_table
from tests.boards import run_robustad
from tests.test_aggregate import two_level_by_hand

BOTTLE = Path(__file__).resolve().parents[1] / "results" / "bottle" / "leaderboard.csv"
PERTURBATION = ["surrogate", "attack", "eps", "round_8bit"]


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return pd.read_csv(BOTTLE, dtype={"eps": str, "round_8bit": str})


def expected(raw: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean and sample std over seeds of one calibrator's rows (AUROC does not depend on the calibrator)."""
    one = raw[raw["calibrator"] == "platt"]
    return one.groupby(PERTURBATION, sort=False)[metric].agg(["mean", "std"]).reset_index()


def run80(monkeypatch, capsys, *args):
    """The CLI in-process with its console 80 columns wide."""
    import robustad.cli

    monkeypatch.setattr(robustad.cli, "console", Console(width=80, file=io.StringIO()))
    code, _, err = run_robustad(monkeypatch, capsys, *args)
    return code, robustad.cli.console.file.getvalue(), err


def test_default_table_fits_80_columns_with_every_value_whole(raw, monkeypatch, capsys):
    code, out, err = run80(monkeypatch, capsys, "leaderboard", BOTTLE)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert "…" not in out and max(map(len, lines)) <= 80
    header = next(line for line in lines if line.startswith("surrogate"))
    assert header.split() == [*PERTURBATION, "clean_auroc", "adv_auroc", "noise"]
    assert "backbone=efficientnet_lite0" in out and "dataset=mvtec" in out  # shared settings in the title
    body = [line.split() for line in lines if line.split()[:1] in (["none"], ["score"], ["linear"])]
    assert len(body) == len(raw.groupby(PERTURBATION))  # one line per perturbation: calibrators are one line
    for _, want in expected(raw, "adv_auroc").iterrows():
        line = next(b for b in body if b[:4] == [str(want[c]) for c in PERTURBATION])
        text = f"{want['mean']:.3f}" if not want["std"] > 0 else f"{want['mean']:.3f}±{want['std']:.3f}"
        assert line[5] == text


def test_rich_console_of_80_columns_shows_intervals_without_cutting(raw):
    console = Console(width=80, file=io.StringIO())
    rows = load_rows(BOTTLE, ["surrogate=score", "round_8bit=False"])
    print_table(console, summary_table(summarise(rows), "bottle", intervals=True))
    out = console.file.getvalue()
    assert "…" not in out and max(map(len, out.splitlines())) <= 80
    one = raw[(raw["calibrator"] == "platt") & (raw["attack"] == "fgsm") & (raw["surrogate"] == "score")
              & (raw["eps"] == "8/255") & (raw["round_8bit"] == "False")]
    low, high = two_level_by_hand(*(one[c].astype(float).tolist() for c in ("adv_auroc", "adv_auroc_ci_low",
                                                                             "adv_auroc_ci_high")))
    assert f"[{low:.2f}, {high:.2f}]" in out


def test_chosen_columns_and_a_note_for_settings_no_column_shows(monkeypatch, capsys):
    code, out, err = run80(monkeypatch, capsys, "leaderboard", BOTTLE, "--columns", "attack,adv_ece",
                           "--where", "eps=8/255")
    assert code == 0 and "…" not in out
    assert next(line for line in out.splitlines() if line.startswith("attack")).split() == ["attack", "adv_ece"]
    assert "lines also differ in surrogate, calibrator, round_8bit" in " ".join(out.split())


def test_unknown_column_is_one_line_listing_the_valid_ones(monkeypatch, capsys):
    code, out, err = run_robustad(monkeypatch, capsys, "leaderboard", BOTTLE, "--columns", "attack,bogus")
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert err.startswith("robustad: error: --columns 'bogus': unknown column; valid columns: dataset, ")
    assert "adv_auroc" in err and "noise" in err
    code, _, err = run_robustad(monkeypatch, capsys, "leaderboard", BOTTLE, "--format", "html")
    assert code == 2 and "--format 'html': expected one of table, csv, json, markdown" in err


def test_csv_and_json_carry_the_same_numbers_as_pandas(raw, monkeypatch, capsys):
    args = ("leaderboard", BOTTLE, "--columns", ",".join([*PERTURBATION, "adv_auroc"]), "--intervals")
    code, out, _ = run_robustad(monkeypatch, capsys, *args, "--format", "csv")
    assert code == 0
    table = pd.read_csv(io.StringIO(out), dtype={"eps": str, "round_8bit": str})
    assert {"dataset", "backbone", "adv_auroc_mean", "adv_auroc_std", "adv_auroc_ci_low"} <= set(table.columns)
    merged = table.merge(expected(raw, "adv_auroc"), on=PERTURBATION)
    assert len(merged) == len(table) == len(raw.groupby(PERTURBATION))
    assert merged["adv_auroc_mean"].to_numpy() == pytest.approx(merged["mean"].to_numpy())
    assert merged["adv_auroc_std"].to_numpy() == pytest.approx(merged["std"].fillna(0).to_numpy())
    code, out, _ = run_robustad(monkeypatch, capsys, *args, "--format", "json")
    records = pd.DataFrame(json.loads(out))
    assert records["adv_auroc_mean"].to_numpy() == pytest.approx(table["adv_auroc_mean"].to_numpy())
    assert list(records.columns) == list(table.columns)


def test_markdown_has_one_table_line_per_aggregated_line(raw, monkeypatch, capsys):
    code, out, _ = run_robustad(monkeypatch, capsys, "leaderboard", BOTTLE, "--format", "markdown",
                                "--where", "eps=8/255", "--where", "round_8bit=False")
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    assert lines[0] == "| surrogate | attack | clean_auroc | adv_auroc | noise |"
    kept = raw[(raw["eps"] == "8/255") & (raw["round_8bit"] == "False")]
    assert len(lines) - 2 == len(kept.groupby(["surrogate", "attack"]))
    fgsm = kept[(kept["surrogate"] == "score") & (kept["attack"] == "fgsm") & (kept["calibrator"] == "platt")]
    noise = kept[(kept["attack"] == "noise") & (kept["calibrator"] == "platt")]["adv_auroc"]
    mean, std = fgsm["adv_auroc"].mean(), fgsm["adv_auroc"].std()
    line = next(line for line in lines if line.startswith("| score | fgsm | "))
    assert line.endswith(f"| {mean:.3f} ± {std:.3f} | {noise.mean():.3f} ± {noise.std():.3f} |")
