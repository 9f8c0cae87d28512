"""``robustad report``: interval bands and the noise control on the robustness curves, the site of one run, and
one-line failures on bad input before anything is drawn."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex

from robustad.results.figures import draw_metric_vs_eps, eps_curves
from robustad.results.report import write_report
from robustad.results.scorefiles import SCORE_COLUMNS
from robustad.twolevel import seed_mean_bounds
from tests.boards import board, row, run_robustad, write_board


def curve_rows() -> pd.DataFrame:
    """pgd via score at two eps and two seeds, the noise control at one eps, a clean-only row."""
    return board(
        row(seed=0, eps="2/255", adv_auroc=0.6, adv_auroc_ci_low=0.5, adv_auroc_ci_high=0.7, clean_auroc=0.9),
        row(seed=1, eps="2/255", adv_auroc=0.8, adv_auroc_ci_low=0.6, adv_auroc_ci_high=0.9, clean_auroc=1.0),
        row(seed=0, eps="8/255", adv_auroc=0.2, adv_auroc_ci_low=0.1, adv_auroc_ci_high=0.3, clean_auroc=0.9),
        row(seed=1, eps="8/255", adv_auroc=0.4, adv_auroc_ci_low=None, adv_auroc_ci_high=None, clean_auroc=1.0),
        row(attack="noise", surrogate="none", eps="2/255", adv_auroc=0.85, adv_auroc_ci_low=0.8,
            adv_auroc_ci_high=0.9, clean_auroc=0.9),
        row(attack="none", surrogate="none", eps="", clean_auroc=0.1),
    )


def test_eps_curves_average_values_and_give_the_two_level_interval_per_attack_and_eps():
    """The band is the interval of the mean over seeds that the tables use (``seed_mean_bounds``, tested in
    tests/test_twolevel.py), not the mean of the seeds' endpoints (0.55, 0.8)."""
    curves = eps_curves(curve_rows(), "auroc").set_index(["attack", "eps_value"])
    assert len(curves) == 3  # the clean-only row has no eps
    pgd = curves.loc[("pgd", 2 / 255)]
    low, high = seed_mean_bounds([0.6, 0.8], [0.5, 0.6], [0.7, 0.9], n_eff=None)
    assert (pgd["mean"], pgd["ci_low"], pgd["ci_high"]) == pytest.approx((0.7, low, high))
    assert (low, high) != pytest.approx((0.55, 0.8), abs=0.01)
    at_8 = curves.loc[("pgd", 8 / 255)]
    assert at_8["mean"] == pytest.approx(0.3) and math.isnan(at_8["ci_low"])  # one seed has no interval
    assert curves.loc[("noise", 2 / 255), "mean"] == 0.85


def test_the_naive_and_the_adaptive_attacker_are_lines_of_their_own():
    """One entry holds the rows of a defense attacked with BPDA and without, with EOT 4 and with 1: averaging them
    would draw a line that no attacker reached."""
    deterministic = [row(defense="jpeg", bpda=bpda, adv_auroc=value) for bpda, value in (("identity", 0.1),
                                                                                          ("off", 0.9))]
    randomized = [row(defense="gaussian", defense_randomized="True", defense_samples="4.0", eot_samples=eot,
                      adv_auroc=value) for eot, value in ((4, 0.2), (1, 0.6))]
    noise = row(attack="noise", surrogate="none", defense="gaussian", defense_randomized="True",
                defense_samples="4.0", adv_auroc=0.95)
    curves = eps_curves(board(*deterministic, *randomized, noise), "auroc")
    pgd = curves[curves["attack"] == "pgd"]
    assert dict(zip(pgd["variant"], pgd["mean"])) == {"": 0.1, "no BPDA": 0.9, "4 draws, EOT 4": 0.2,
                                                      "4 draws, EOT 1": 0.6}
    assert curves.loc[curves["attack"] == "noise", "variant"].tolist() == [""]
    labels = draw_metric_vs_eps(board(*randomized), "auroc").axes[0].get_legend_handles_labels()[1]
    assert labels == ["pgd / score (4 draws, EOT 1)", "pgd / score (4 draws, EOT 4)"]


def test_figure_has_interval_bands_and_the_noise_control_dashed_with_the_legend_outside():
    figure = draw_metric_vs_eps(curve_rows(), "auroc")
    ax = figure.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert ax.get_legend_handles_labels()[1] == ["noise control", "pgd / score", "clean"]
    noise, pgd = lines["noise control"], lines["pgd / score"]
    assert (noise.get_linestyle(), to_hex(noise.get_color())) == ("--", "#000000")
    assert list(pgd.get_xdata()) == pytest.approx([2.0, 8.0]) and list(pgd.get_ydata()) == pytest.approx([0.7, 0.3])
    bands = []
    for band in ax.collections:
        assert isinstance(band, PolyCollection)
        vertices = band.get_paths()[0].vertices
        bands.append((to_hex(band.get_facecolor()[0]), min(vertices[:, 0]), max(vertices[:, 0]),
                      min(vertices[:, 1]), max(vertices[:, 1])))
    # pgd at 2/255 only (one seed has no interval at 8/255) and the noise control: a band over one eps each
    low, high = seed_mean_bounds([0.6, 0.8], [0.5, 0.6], [0.7, 0.9], n_eff=None)  # the two-level interval
    assert sorted(bands, key=lambda band: band[3]) == [
        (to_hex(pgd.get_color()), 2.0, 2.0, pytest.approx(low), pytest.approx(high)),
        ("#000000", 2.0, 2.0, pytest.approx(0.8), pytest.approx(0.9))]
    assert lines["clean"].get_ydata()[0] == pytest.approx(0.94)  # attacked rows only, not the clean-only row
    legend = ax.get_legend().get_window_extent(figure.canvas.get_renderer())
    assert legend.x0 > ax.get_window_extent(figure.canvas.get_renderer()).x1  # outside the data
    assert draw_metric_vs_eps(board(row(attack="none", surrogate="none", eps="", clean_auroc=0.9)), "auroc") is None


def leaderboard_with_scores(folder, with_scores: int = 3):
    """A three-row leaderboard and score files for its first ``with_scores`` rows."""
    rows = [row(eps="2/255", adv_auroc=0.6, adv_ap=0.7, clean_auroc=0.9, clean_ap=0.95),
            row(eps="8/255", adv_auroc=0.3, adv_ap=0.5, clean_auroc=0.9, clean_ap=0.95),
            row(attack="noise", surrogate="none", eps="8/255", adv_auroc=0.85, adv_ap=0.9, clean_auroc=0.9,
                clean_ap=0.95)]
    scores = folder / "scores"
    scores.mkdir()
    images = pd.DataFrame({"path": [f"img{i}.png" for i in range(6)], "split": ["calib"] * 2 + ["eval"] * 4,
                           "label": [0, 1, 0, 0, 1, 1], "clean_score": [0.1, 0.9, 0.2, 0.3, 0.8, 0.7],
                           "clean_prob": [0.1, 0.9, 0.2, 0.3, 0.8, 0.7], "adv_score": [None, None, 0.6, 0.5, 0.4, 0.3],
                           "adv_prob": [None, None, 0.6, 0.5, 0.4, 0.3]})
    for line in rows[:with_scores]:
        images.to_csv(scores / f"{line['cell_hash']}.csv", index=False)
    return write_board(folder / "board.csv", rows), scores, rows


def test_report_warns_with_the_count_of_rows_without_scores_and_draws_every_figure(tmp_path, monkeypatch, capsys):
    board_csv, scores, _ = leaderboard_with_scores(tmp_path, with_scores=2)
    out = tmp_path / "report"
    code, stdout, err = run_robustad(monkeypatch, capsys, "report", board_csv, "--scores", scores, "--out", out)
    assert code == 0, err
    assert err == f"robustad: warning: 1 of 3 rows have no score file in {scores}; the reliability and entropy " \
                  "plots leave them out\n"
    assert {p.name for p in out.iterdir()} == {"index.html", "static", "entries"}
    [card] = (out / "entries").glob("*.html")
    figures = {"robustness-mvtec.png", "reliability.png", "entropy.png"}
    assert {p.name for p in (out / "entries" / card.stem).iterdir()} == figures
    assert all((out / "entries" / card.stem / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in figures)
    assert all(f'src="{card.stem}/{name}"' in card.read_text() for name in figures)
    assert "[0.50, 0.70]" not in card.read_text()  # these rows have no intervals: none is made up


@pytest.mark.parametrize("problem, message", [
    ("missing csv", "does not exist"), ("empty csv", "has no rows"), ("header-only csv", "has no rows"),
    ("text in the leaderboard", "column adv_ap: 'high' is not a number"),
    ("out is a file", "--out {out} is a file"), ("scores is a file", "--scores {scores} is not a folder"),
    ("scores missing", "--scores {scores} is not a folder"), ("empty score file", "score file {file} is empty"),
    ("header-only score file", "score file {file} is empty"),
    ("foreign score file",
     "score file {file} is not a robustad score file: it lacks clean_score, clean_prob, adv_score, adv_prob"),
    ("text in a score file", "score file {file}: column adv_prob: 'x' is not a number"),
])
def test_report_fails_with_one_line_before_drawing_anything(tmp_path, monkeypatch, capsys, problem, message):
    board_csv, scores, rows = leaderboard_with_scores(tmp_path)
    out, file = tmp_path / "report", scores / f"{rows[1]['cell_hash']}.csv"
    if problem == "missing csv":
        board_csv.unlink()
    elif problem == "empty csv":
        board_csv.write_text("")
    elif problem == "header-only csv":
        write_board(board_csv, [])
    elif problem == "text in the leaderboard":
        write_board(board_csv, [*rows[:2], {**rows[2], "adv_ap": "high"}])
    elif problem == "out is a file":
        out.write_text("not a folder")
    elif problem == "scores is a file":
        scores = file
    elif problem == "scores missing":
        scores = tmp_path / "nowhere"
    elif problem == "empty score file":
        file.write_text("")
    elif problem == "header-only score file":
        file.write_text(",".join(SCORE_COLUMNS) + "\n")
    elif problem == "foreign score file":
        file.write_text("path,split,label,score\na.png,eval,0,0.5\n")
    else:
        file.write_text(file.read_text().replace(",0.3\n", ",x\n"))
    code, stdout, err = run_robustad(monkeypatch, capsys, "report", board_csv, "--scores", scores, "--out", out)
    assert (code, stdout) == (2, "")
    assert err.startswith("robustad: error: ") and err.count("\n") == 1
    assert message.format(out=out, scores=scores, file=file) in err
    assert not out.is_dir()


def test_write_report_without_scores_or_attacks_writes_the_pages(tmp_path):
    page = write_report(board(row(attack="none", surrogate="none", eps="", clean_auroc=0.9)), None, tmp_path / "r")
    assert "No attacked rows: nothing to rank." in page.read_text()
    [card] = (tmp_path / "r" / "entries").glob("*.html")
    assert "efficientnet_lite0" in card.read_text() and not list((tmp_path / "r" / "entries" / card.stem).iterdir())
