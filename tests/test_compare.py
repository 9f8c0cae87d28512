"""``robustad compare``: paired differences on hidden pairs of leaderboards with per-image scores, and on the committed
results/detectors rows (which have none)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from robustad.errors import RobustadError
from robustad.results.compare import compare
from tests.boards import row, run_robustad, write_board
from tests.test_paired import brute_force_delong, correlated_pair

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def hidden_pair(tmp_path, gap: bool, seeds=(0, 1, 2), eps=("2/255", "8/255")):
    """Two leaderboards (detectors ``a`` and ``b``) with a score file per row: b's adversarial scores are a's plus
    noise, and (``gap``) 0.1 lower in population AUROC."""
    rng = np.random.default_rng(11 if gap else 12)
    scores = tmp_path / "scores"
    scores.mkdir(exist_ok=True)
    boards = {"a": [], "b": []}
    for seed in seeds:
        for e in eps:
            labels, first, second = correlated_pair(rng, gap)
            paths = [f"img{seed}_{i}.png" for i in range(labels.size)]
            for detector, values in (("a", first), ("b", second)):
                line = row(detector=detector, seed=seed, eps=e, adv_auroc=roc_auc_score(labels, values))
                pd.DataFrame({"path": paths, "split": "eval", "label": labels, "clean_score": values,
                              "clean_prob": 0.5, "adv_score": values, "adv_prob": 0.5}).to_csv(
                    scores / f"{line['cell_hash']}.csv", index=False)
                boards[detector].append(line)
    return [write_board(tmp_path / f"{d}.csv", lines) for d, lines in boards.items()], scores


def test_leaderboards_differing_only_by_noise_are_not_significant(tmp_path, monkeypatch, capsys):
    (first, second), scores = hidden_pair(tmp_path, gap=False)
    code, out, err = run_robustad(monkeypatch, capsys, "compare", first, second, "--scores", scores,
                                  "--resamples", "400")
    assert code == 0, err
    assert "(images)" in out.replace("\n", " ")
    assert not [line for line in out.splitlines() if line.endswith(" *")]


def test_a_true_auroc_difference_of_0_1_on_59_images_is_significant(tmp_path):
    (first, second), scores = hidden_pair(tmp_path, gap=True)
    rows = pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False) for p in (first, second)])
    table = compare(rows, "detector", "a", "b", scores=scores, resamples=400)
    assert len(table) == 2 and table["significant"].all() and (table["method"] == "images").all()
    assert table["difference"].to_numpy() == pytest.approx([0.1, 0.1], abs=0.05)


def test_a_single_seed_auroc_difference_gets_delongs_test(tmp_path):
    (first, second), scores = hidden_pair(tmp_path, gap=True, seeds=(0,), eps=("2/255",))
    rows = pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False) for p in (first, second)])
    table = compare(rows, "detector", scores=scores)
    files = {d: pd.read_csv(next(scores.glob(f"{rows[rows['detector'] == d]['cell_hash'].iloc[0]}.csv")))
             for d in ("a", "b")}
    difference, se, p = brute_force_delong(files["a"]["label"].to_numpy(), files["a"]["adv_score"].to_numpy(),
                                           files["b"]["adv_score"].to_numpy())
    assert table["method"].tolist() == ["delong"]
    assert (table["difference"].iloc[0], table["p"].iloc[0]) == pytest.approx((difference, p))
    assert table["low"].iloc[0] == pytest.approx(difference - 1.959964 * se, abs=1e-5)


def test_without_scores_pairs_rows_by_seed_and_averages_the_shared_ones():
    """Seed 2 of a has no partner and is left out: a - b over seeds 0 and 1 is (0.1 + 0.3) / 2 by hand."""
    rows = pd.DataFrame([row(detector="a", seed=0, adv_auroc=0.6), row(detector="a", seed=1, adv_auroc=0.8),
                         row(detector="a", seed=2, adv_auroc=0.1), row(detector="b", seed=0, adv_auroc=0.5),
                         row(detector="b", seed=1, adv_auroc=0.5)])
    table = compare(rows, "detector")
    assert table[["seeds", "a_mean", "b_mean", "difference", "method"]].iloc[0].tolist() == \
        [2, pytest.approx(0.7), pytest.approx(0.5), pytest.approx(0.2), "rows"]


def test_compare_on_results_detectors_prints_every_pair_in_80_columns(monkeypatch, capsys):
    code, out, err = run_robustad(monkeypatch, capsys, "compare", REPO / "results/detectors/leaderboard.csv",
                                  "--resamples", "200")
    assert code == 0, err
    assert max(map(len, out.splitlines())) <= 80
    titles = [line for line in out.splitlines() if line.startswith("detector: a = ")]
    assert len(titles) == 3  # anomalydino, patchcore, subspacead: three pairs
    # per pair 10 scopes: noise, white-box fgsm/pgd/square and transfer fgsm at 2 eps (WinCLIP shares no cell)
    assert out.count("pgd score 8/255") == 3 and out.count("[") == 3 * 10


@pytest.mark.parametrize("args, message", [(["--axis", "colour"], "--axis 'colour'"),
                                           (["--a", "nope"], "--a 'nope'"),
                                           (["--metric", "speed"], "--metric 'speed'")])
def test_bad_input_is_one_line_exit_2(monkeypatch, capsys, args, message):
    code, out, err = run_robustad(monkeypatch, capsys, "compare", REPO / "results/detectors/leaderboard.csv", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_axis_values_must_share_cells():
    rows = pd.DataFrame([row(detector="a", seed=0, adv_auroc=0.6), row(detector="b", seed=1, adv_auroc=0.5)])
    with pytest.raises(RobustadError, match="no cells shared"):
        compare(rows, "detector")


def test_the_api_compares_as_the_command_line_does(tmp_path):
    import robustad.api

    (first, second), scores = hidden_pair(tmp_path, gap=True)
    table = robustad.api.compare([first, second], "detector", "a", "b", scores=scores, resamples=200)
    assert table["significant"].all() and set(table["scope"]) == {"2/255", "8/255"}


def test_the_site_ranking_marks_a_significant_gap_to_the_next_entry_and_not_a_tie():
    """a is 0.3 above b on every seed (narrow intervals): significant; b and c differ by noise: not."""
    from robustad.results.compare import next_in_rank
    from robustad.results.entries import ranking, with_entries

    values = {"a": [0.80, 0.82, 0.79], "b": [0.50, 0.52, 0.49], "c": [0.49, 0.51, 0.48]}
    rows = pd.DataFrame([row(detector=d, seed=s, white_box="True", adv_auroc=v, adv_auroc_ci_low=v - 0.02,
                             adv_auroc_ci_high=v + 0.02, clean_auroc=0.99)
                         for d, seeds in values.items() for s, v in enumerate(seeds)])
    rows = with_entries(rows)
    lines = ranking(rows)
    lines = lines[lines["threat"] == "white-box"]
    marks = next_in_rank(rows, lines).to_dict()
    named = {lines.loc[i, "entry"]: mark for i, mark in marks.items()}
    entry_of = dict(zip(rows["detector"], rows["entry"]))
    assert named[entry_of["a"]] == "*" and named[entry_of["b"]] == "=" and named[entry_of["c"]] == ""
