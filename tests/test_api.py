"""The Python API and the CLI run one protocol: the same grid gives the same rows either way."""

from __future__ import annotations

import pytest

import robustad
from robustad.errors import RobustadError
from robustad.results.leaderboard import read_rows
from tests.boards import run_robustad

VOLATILE = {"timestamp", *(f"t_{s}_s" for s in ("split", "fit", "clean", "pixel", "surrogate", "attack",
                                                "calib_metrics"))}
GRID = dict(dataset="demo", category="weave", resolution="64", attack="fgsm", surrogate="score", eps="8/255",
            calib="platt", resamples=20, threads=1)


def stable(rows: list[dict]) -> dict[str, dict]:
    return {row["cell_hash"]: {k: v for k, v in row.items() if k not in VOLATILE} for row in rows}


def test_a_grid_run_through_the_api_and_through_the_cli_gives_identical_rows(tmp_path, monkeypatch, capsys):
    result = robustad.bench(**GRID, out=tmp_path / "api.csv", pixel_metrics=False)
    arguments = [f"--{key.replace('_', '-')}={value}" for key, value in GRID.items()]
    code, _, err = run_robustad(monkeypatch, capsys, "bench", *arguments, "--no-pixel-metrics",
                                "--out", tmp_path / "cli.csv")
    assert code == 0, err
    api, cli = stable(read_rows(tmp_path / "api.csv")), stable(read_rows(tmp_path / "cli.csv"))
    assert api == cli and len(api) == 2  # the noise control beside fgsm, added by the API as by the CLI
    assert set(result.rows["cell_hash"]) == set(api) and result.written == 2 and not result.failures
    again = robustad.bench(**GRID, out=tmp_path / "api.csv", pixel_metrics=False)
    assert again.written == 0 and again.skipped == 2 and set(again.rows["cell_hash"]) == set(api)


def test_the_api_takes_python_lists_and_structured_options(tmp_path):
    with pytest.raises(RobustadError, match="option steps='abc': expected int"):
        robustad.bench(**{**GRID, "attack": ["pgd"]}, options={"attack.pgd.steps": "abc"}, out=tmp_path / "a.csv")
    with pytest.raises(RobustadError, match="option steps='2.5': expected int"):
        robustad.bench(**{**GRID, "attack": ["pgd"]}, options={"attack.pgd.steps": 2.5}, out=tmp_path / "a.csv")
    with pytest.raises(RobustadError, match="members .* name one attack with two settings"):
        robustad.bench(**{**GRID, "attack": ["worstcase"]}, out=tmp_path / "a.csv",
                       options={"attack.worstcase.members": ["pgd", "pgd:20"]})
    assert not (tmp_path / "a.csv").exists()  # every refusal came before any work
