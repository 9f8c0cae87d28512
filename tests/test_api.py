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


def toml(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def test_a_grid_run_through_the_api_the_cli_and_a_config_file_gives_identical_rows(tmp_path, monkeypatch, capsys):
    result = robustad.bench(**GRID, out=tmp_path / "api.csv", pixel_metrics=False)
    arguments = [f"--{key.replace('_', '-')}={value}" for key, value in GRID.items()]
    code, _, err = run_robustad(monkeypatch, capsys, "bench", *arguments, "--no-pixel-metrics",
                                "--out", tmp_path / "cli.csv")
    assert code == 0, err
    config = tmp_path / "grid.toml"
    config.write_text("".join(f"{key} = {toml(value)}\n" for key, value in {**GRID, "pixel_metrics": False}.items()))
    code, _, err = run_robustad(monkeypatch, capsys, "bench", "--config", config, "--out", tmp_path / "file.csv")
    assert code == 0, err
    api, cli = stable(read_rows(tmp_path / "api.csv")), stable(read_rows(tmp_path / "cli.csv"))
    assert api == cli == stable(read_rows(tmp_path / "file.csv"))
    assert len(api) == 2  # the noise control beside fgsm, added by the API as by the CLI
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


def test_limit_draws_a_few_eval_images_and_its_rows_are_never_taken_for_full_ones(tmp_path):
    from sklearn.model_selection import train_test_split

    from robustad.engine.splits import make_split
    from robustad.plugins import get_registry

    grid = {**GRID, "attack": "none", "out": tmp_path / "board.csv", "pixel_metrics": False}
    smoke = robustad.bench(**grid, limit=5)
    [row] = smoke.rows.to_dict("records")
    assert int(row["n_eval"]) == 5 and int(row["limit"]) == 5 and smoke.written == 1
    full = robustad.bench(**grid)  # the same grid without a limit: computed, not resumed from the smoke row
    assert full.written == 1 and full.skipped == 0
    [whole] = full.rows.to_dict("records")
    assert whole["cell_hash"] != row["cell_hash"] and int(whole["n_eval"]) > 5 and whole["limit"] in ("0", 0)
    again = robustad.bench(**grid, limit=5)
    assert again.written == 0 and again.skipped == 1  # a smoke row is resumed by a smoke run
    data = get_registry().get("dataset", "demo").cls().load(None, "weave")
    evaluation = make_split(data, 1, 0, 0.3).eval
    drawn, _ = train_test_split(evaluation, train_size=5, stratify=[s.label for s in evaluation], random_state=0)
    assert make_split(data, 1, 0, 0.3, limit=5).eval == sorted(drawn, key=lambda s: str(s.path))
