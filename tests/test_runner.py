"""The benchmark runner end to end: one row per cell, resume, interruption, shared work, saved scores."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from robustad.declaration import Request
from robustad.engine.executors import run_local
from robustad.engine.progress import SilentReporter
from robustad.engine.request import build_cells
from robustad.engine.settings import RunSettings
from robustad.plugins import PluginRegistry, get_registry
from robustad.results.leaderboard import COLUMNS, read_rows
from tests.conftest import TinyBackbone

BOTTLE_GRID = ["--dataset", "mvtec", "--category", "bottle", "--backbone", "efficientnet_lite0",
               "--resolution", "112", "--shots", "1", "--seeds", "0,1", "--surrogate", "score",
               "--attack", "fgsm", "--eps", "2/255,8/255", "--calib", "platt,none", "--no-pixel-metrics"]
N_BOTTLE_CELLS = 2 * 2 * 2 * 2  # seeds x eps x calibrators x (fgsm and the noise control the CLI adds)


def bench(cli, mvtec_root, out, *extra, env=None):
    return cli("bench", "--data-root", mvtec_root, *BOTTLE_GRID, "--out", out, *extra, env=env)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, mvtec_root):
    """The uninterrupted reference run of the bottle grid (its rows, in order)."""
    from tests.conftest import run_cli

    out = tmp_path_factory.mktemp("full") / "board.csv"
    scores = out.parent / "scores"
    result = bench(run_cli, mvtec_root, out, "--save-scores", scores)
    assert result.returncode == 0, result.stderr
    return out, scores


@pytest.mark.integration
def test_one_row_per_cell_and_rerun_adds_none(full_run, cli, mvtec_root):
    out, _ = full_run
    rows = read_rows(out)
    assert len(rows) == N_BOTTLE_CELLS == len({r["cell_hash"] for r in rows})
    assert {r["seed"] for r in rows} == {"0", "1"} and {r["eps"] for r in rows} == {"2/255", "8/255"}
    assert all(r["n_calib"] and r["n_eval"] and r["clean_auroc"] and r["adv_auroc"] for r in rows)
    noise = [r for r in rows if r["attack"] == "noise"]
    assert len(noise) == N_BOTTLE_CELLS // 2 and {(r["surrogate"], r["white_box"]) for r in noise} == {("none", "")}
    before = out.read_bytes()
    again = bench(cli, mvtec_root, out)
    assert again.returncode == 0, again.stderr
    assert f"0 rows written, {N_BOTTLE_CELLS} cells already done" in again.stdout
    assert out.read_bytes() == before


@pytest.mark.integration
def test_saved_scores_reproduce_the_row(full_run):
    out, scores = full_run
    for row in read_rows(out):
        frame = pd.read_csv(scores / f"{row['cell_hash']}.csv")
        evaluation = frame[frame["split"] == "eval"]
        assert len(evaluation) == int(row["n_eval"]) and len(frame) - len(evaluation) == int(row["n_calib"])
        assert roc_auc_score(evaluation["label"], evaluation["clean_score"]) == pytest.approx(
            float(row["clean_auroc"]), abs=1e-12)
        assert roc_auc_score(evaluation["label"], evaluation["adv_score"]) == pytest.approx(
            float(row["adv_auroc"]), abs=1e-12)
        assert expected_calibration_error(evaluation["label"], evaluation["clean_prob"]) == pytest.approx(
            float(row["clean_ece"]), abs=1e-12)
        assert frame.loc[frame["split"] == "calib", "adv_score"].isna().all()


def expected_calibration_error(labels, probs, bins=15):
    labels, probs = np.asarray(labels, float), np.asarray(probs, float)
    index = np.minimum((probs * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        chosen = index == b
        if chosen.any():
            total += chosen.sum() / len(probs) * abs(probs[chosen].mean() - labels[chosen].mean())
    return total


@pytest.mark.integration
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_killed_run_keeps_a_valid_prefix_and_rerun_completes(how, full_run, cli, mvtec_root, tmp_path):
    reference = read_rows(full_run[0])
    out = tmp_path / "board.csv"
    command = [sys.executable, "-m", "robustad", "bench", "--data-root", str(mvtec_root), *BOTTLE_GRID,
               "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if out.exists() and len(read_rows(out)) >= 1:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be interrupted"
    os.kill(process.pid, how)
    _, stderr = process.communicate(timeout=120)
    if how == signal.SIGINT:
        assert process.returncode == 130 and "Traceback" not in stderr
    with out.open(newline="") as handle:
        lines = list(csv.reader(handle))
    assert lines[0] == list(COLUMNS) and all(len(line) == len(COLUMNS) for line in lines)
    partial = read_rows(out)
    assert 1 <= len(partial) < N_BOTTLE_CELLS
    assert [r["cell_hash"] for r in partial] == [r["cell_hash"] for r in reference[:len(partial)]]
    rerun = bench(cli, mvtec_root, out)
    assert rerun.returncode == 0, rerun.stderr
    final = read_rows(out)
    assert [r["cell_hash"] for r in final] == [r["cell_hash"] for r in reference]
    for mine, theirs in zip(final, reference):
        for metric in ("clean_auroc", "adv_auroc", "clean_ece", "adv_ece", "flag_auroc"):
            assert float(mine[metric]) == pytest.approx(float(theirs[metric]), abs=1e-9)


class CountingBackbone(TinyBackbone):
    """The tiny backbone, counting the images it sees with and without gradients."""

    name = "counting"
    seen = {"no_grad": 0, "grad": 0}

    def __init__(self, *, weights: str | None = None, device: str = "cpu") -> None:
        super().__init__()

    def forward(self, x):
        import torch

        CountingBackbone.seen["grad" if torch.is_grad_enabled() else "no_grad"] += x.shape[0]
        return super().forward(x)


class CountingPlugin:
    from robustad.hookspecs import hookimpl

    @hookimpl
    def register_backbones(self, register):
        register(CountingBackbone)


def test_clean_features_are_computed_once_per_image_per_prefix(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTAD_CACHE", str(tmp_path / "cache"))
    registry: PluginRegistry = get_registry()
    if not registry.pm.has_plugin("counting"):
        registry.add(CountingPlugin(), "counting")
    request = Request(noise_control=False, dataset="demo", data_root=None, category="disc", shots="1", seeds="0",
                      backbone="counting", weights="", resolution="32", detector="anomalydino",
                      surrogate="score", attack="fgsm,pgd", eps="2/255,8/255",
                      calib="platt,isotonic,none", calib_fraction=0.3, options=[])
    cells = build_cells(request, registry)
    assert len(cells) == 2 * 2 * 3
    CountingBackbone.seen.update(no_grad=0, grad=0)
    result = run_local(cells, RunSettings(pixel_metrics=False), tmp_path / "board.csv", registry,
                       SilentReporter(), lambda cell, row: None)
    row = result.written[0]
    n_ref, n_calib, n_eval = row["n_ref"], row["n_calib"], row["n_eval"]
    assert len(result.written) == 12
    attack_prefixes = 4  # (fgsm, pgd) x (2/255, 8/255), shared by the three calibrators
    pgd_final_iterates = 2  # PGD judges its last iterate with one more forward (the others come with a gradient)
    assert CountingBackbone.seen["no_grad"] == (n_ref * 8 + n_calib + n_eval + attack_prefixes * n_eval
                                                + pgd_final_iterates * n_eval)
    assert CountingBackbone.seen["grad"] == 2 * (1 + 10) * n_eval  # per eps: FGSM 1 step, PGD 10 steps


@pytest.mark.parametrize("args, message", [
    (["--attack", "nosuch"], "unknown attack 'nosuch'; choose from:"),
    (["--calib", "platt,bogus"], "unknown calibrator 'bogus'"),
    (["--eps", "0"], "eps"),
    (["--shots", "0"], "0"),
    (["--opt", "attack.pgd.nosuch=1"], "has no option 'nosuch'"),
    (["--attack", "fgsm", "--opt", "attack.pgd.steps=3"], "--opt names attack 'pgd', which this run does not use"),
    (["--attack", "torchattacks:PGD", "--opt", "attack.torchattacks.stepz=3"], "has no option 'stepz'"),
    (["--attack", "torchattacks:Nope"], "unknown torchattacks attack 'Nope'"),
])
def test_bench_usage_errors_exit_2_with_one_line(cli, args, message, tmp_path):
    result = cli("bench", *args, "--out", tmp_path / "x.csv", env={"ROBUSTAD_CACHE": str(tmp_path)})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and result.stderr.strip().count("\n") == 0
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.integration
def test_report_writes_figures_and_html(full_run, cli, tmp_path):
    out, scores = full_run
    result = cli("report", out, "--scores", scores, "--out", tmp_path / "report")
    assert result.returncode == 0, result.stderr
    [card] = (tmp_path / "report" / "entries").glob("*.html")
    expected = {"robustness-mvtec.png", "reliability.png", "entropy.png"}
    assert expected == {p.name for p in (card.parent / card.stem).iterdir()}
    for name in expected:
        assert (card.parent / card.stem / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = card.read_text()
    assert all(f'src="{card.stem}/{name}"' in page for name in expected)


@pytest.mark.integration
def test_platt_lowers_eval_ece_below_raw_scores_on_bottle(full_run):
    rows = pd.DataFrame(read_rows(full_run[0]))
    rows["clean_ece"] = rows["clean_ece"].astype(float)
    for seed, part in rows.groupby("seed"):
        ece = part.groupby("calibrator")["clean_ece"].first()
        assert ece["platt"] < ece["none"], (seed, ece.to_dict())


def test_attack_none_gives_clean_only_rows_with_empty_adversarial_columns(tmp_path):
    registry: PluginRegistry = get_registry()
    if not registry.pm.has_plugin("counting"):
        registry.add(CountingPlugin(), "counting")
    request = Request(noise_control=False, dataset="demo", data_root=None, category="weave", shots="1", seeds="0",
                      backbone="counting", weights="", resolution="32", detector="anomalydino",
                      surrogate="score", attack="none", eps="8/255", calib="platt,none",
                      calib_fraction=0.3, options=[])
    cells = build_cells(request, registry)
    assert [(c.surrogate, c.eps) for c in cells] == [("none", ""), ("none", "")]
    CountingBackbone.seen.update(no_grad=0, grad=0)
    out = tmp_path / "board.csv"
    run_local(cells, RunSettings(pixel_metrics=False), out, registry, SilentReporter(), lambda cell, row: None)
    assert CountingBackbone.seen["grad"] == 0
    for row in read_rows(out):
        assert row["clean_auroc"] and row["clean_ece"]
        assert all(row[c] == "" for c in COLUMNS if c.startswith("adv_") or c == "flag_auroc")


def test_pixel_metrics_are_filled_for_clean_and_adversarial_eval_images(tmp_path):
    registry: PluginRegistry = get_registry()
    if not registry.pm.has_plugin("counting"):
        registry.add(CountingPlugin(), "counting")
    request = Request(noise_control=False, dataset="demo", data_root=None, category="disc", shots="1", seeds="0",
                      backbone="counting", weights="", resolution="32", detector="anomalydino",
                      surrogate="score", attack="fgsm", eps="8/255", calib="none",
                      calib_fraction=0.3, options=[])
    result = run_local(build_cells(request, registry), RunSettings(), tmp_path / "board.csv", registry,
                       SilentReporter(), lambda cell, row: None)
    [row] = result.written
    for column in ("clean_pixel_auroc", "clean_aupro", "adv_pixel_auroc", "adv_aupro"):
        assert 0.0 <= row[column] <= 1.0, column


@pytest.mark.integration
def test_every_interval_holds_its_value(full_run):
    from robustad.results.schema import INTERVAL_COLUMNS

    rows = read_rows(full_run[0])
    checked = 0
    for row in rows:
        for column in INTERVAL_COLUMNS:
            if row[column] == "":
                assert row[f"{column}_ci_low"] == row[f"{column}_ci_high"] == "", column
                continue
            low, value, high = (float(row[c]) for c in (f"{column}_ci_low", column, f"{column}_ci_high"))
            assert low <= value <= high, (column, low, value, high)
            checked += 1
    assert checked >= len(rows) * 20  # clean and adversarial image metrics and the attack metrics of every row


def test_adversarial_pixel_metrics_belong_to_their_own_eps(tmp_path, monkeypatch):
    """One run over two eps gives each cell the pixel metrics that a run of that eps alone gives."""
    monkeypatch.setenv("ROBUSTAD_CACHE", str(tmp_path / "cache"))
    registry = get_registry()

    def pixel_metrics(eps: str, out: str) -> dict[str, tuple[str, str]]:
        request = Request(noise_control=False, dataset="demo", data_root=None, category="disc", shots="1", seeds="0",
                          backbone="efficientnet_lite0", weights="", resolution="64", detector="anomalydino",
                          surrogate="score", attack="fgsm", eps=eps, calib="none", calib_fraction=0.3,
                          options=[])
        result = run_local(build_cells(request, registry), RunSettings(resamples=0, threads=1), tmp_path / out,
                           registry, SilentReporter(), lambda cell, row: None)
        return {row["eps"]: (row["adv_pixel_auroc"], row["adv_aupro"]) for row in result.written
                if row["attack"] == "fgsm"}

    together = pixel_metrics("2/255,32/255", "together.csv")
    alone = {**pixel_metrics("2/255", "small.csv"), **pixel_metrics("32/255", "large.csv")}
    assert together == alone
    assert together["2/255"] != together["32/255"]
