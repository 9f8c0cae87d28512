"""What robustad hands to other programs holds no live payload: a CSV export a spreadsheet would evaluate as a
formula, or a plugin's description read as rich markup or sent to the terminal as escape sequences."""

from __future__ import annotations

import csv
import io

import pytest
from rich.console import Console

import robustad.cli
from robustad import hookimpl
from robustad.plugins import get_registry
from tests.boards import row, run_robustad, write_board

PAYLOADS = ["=cmd|' /C calc'!A0", "+HYPERLINK(\"http://x\")", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd",
            "\t=1+1", "\r=1+1"]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_csv_export_neutralises_formulas_in_text_cells(tmp_path, monkeypatch, capsys, payload):
    rows = [row(detector=payload, adv_auroc=0.25, clean_auroc=0.5, seed=0),
            row(detector="plain", adv_auroc=0.75, clean_auroc=0.5, seed=0)]
    board = write_board(tmp_path / "b.csv", rows)
    code, out, err = run_robustad(monkeypatch, capsys, "leaderboard", board, "--format", "csv", "--where",
                                  f"detector={payload}")
    assert code == 0
    [line] = list(csv.DictReader(io.StringIO(out)))
    cells = [value for value in line.values() if value]
    assert "'" + payload in cells
    assert not [value for value in cells if value.startswith(("=", "+", "@", "\t", "\r"))]


def test_negative_numbers_stay_numbers(tmp_path):
    from robustad.results.tables import spreadsheet_safe

    assert spreadsheet_safe(-0.25) == -0.25 and spreadsheet_safe("-1") == "'-1" and spreadsheet_safe("a=b") == "a=b"


class Hostile:
    name = "[red]evil[/red]"
    description = "[bold]loud[/bold] \x1b[2J\x1b]0;owned\x07 and [link=http://x]here[/link]"

    def fit(self, scores, labels):
        return self

    def predict(self, scores):
        return scores


class HostilePlugin:
    @hookimpl
    def register_calibrators(self, register):
        register(Hostile)


def test_plugins_shows_descriptions_as_written_without_escape_sequences(monkeypatch, capsys):
    registry = get_registry()
    if not registry.pm.has_plugin("hostile-text"):
        registry.add(HostilePlugin(), "hostile-text", "evil[/]dist")
    terminal = io.StringIO()
    monkeypatch.setattr(robustad.cli, "console", Console(width=400, file=terminal, force_terminal=True,
                                                         color_system="truecolor"))
    code, _, _ = run_robustad(monkeypatch, capsys, "plugins")
    shown = terminal.getvalue()
    assert code == 0 and "[red]evil[/red]" in shown and "[bold]loud[/bold]" in shown
    assert "\\x1b[2J" in shown and "\x1b[2J" not in shown and "\x1b]0;owned" not in shown and "\x07" not in shown
