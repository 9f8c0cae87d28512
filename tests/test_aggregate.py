"""Aggregation: intervals summarised like the means, the noise control beside attacks, controls never averaged with
attacks, the thread-count warning and the leaderboard table."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from robustad.results.aggregate import aggregate, thread_counts
from robustad.results.tables import print_table, summarise, summary_table
from tests.boards import board, row, run_robustad, write_board


def adv(category: str, seed: int, auroc: float | None, low: float | None, high: float | None, **values):
    return row(category=category, seed=seed, adv_auroc=auroc, adv_auroc_ci_low=low, adv_auroc_ci_high=high, **values)


def only_line(summary: pd.DataFrame, **where) -> pd.Series:
    match = summary
    for column, value in where.items():
        match = match[match[column] == value]
    assert len(match) == 1, match
    return match.iloc[0]


def two_level_by_hand(values, lows, highs, resamples=1000, seed=0):
    """The documented draw of ``twolevel.from_rows``, as a loop: seeds with replacement, then each drawn seed's value
    from Normal(value, (high - low) / 3.92), clipped to [0, 1]; the 2.5 and 97.5 percentiles of the means."""
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, len(values), size=(resamples, len(values)))
    noise = rng.standard_normal(chosen.shape)
    z = 1.959963984540054
    means = [np.mean([min(1.0, max(0.0, values[s] + (highs[s] - lows[s]) / (2 * z) * noise[r, j]))
                      for j, s in enumerate(chosen[r])]) for r in range(resamples)]
    return tuple(np.percentile(means, [2.5, 97.5]))


def test_intervals_are_for_the_mean_over_seeds_then_averaged_over_categories():
    rows = board(adv("bottle", 0, 0.6, 0.5, 0.7), adv("bottle", 1, 0.8, 0.7, 0.9),
                 adv("cable", 0, 0.5, 0.3, 0.6), adv("cable", 1, 0.5, 0.4, 0.7))
    line = only_line(aggregate(rows))
    assert line["adv_auroc_mean"] == pytest.approx((0.7 + 0.5) / 2)
    assert line["adv_auroc_std"] == pytest.approx((math.sqrt(0.02) + 0.0) / 2)
    bottle = two_level_by_hand([0.6, 0.8], [0.5, 0.7], [0.7, 0.9])
    cable = two_level_by_hand([0.5, 0.5], [0.3, 0.4], [0.6, 0.7])
    assert line["adv_auroc_ci_low"] == pytest.approx((bottle[0] + cable[0]) / 2)
    assert line["adv_auroc_ci_high"] == pytest.approx((bottle[1] + cable[1]) / 2)
    assert (line["categories"], line["seeds"]) == (2, 2)
    single = only_line(aggregate(board(adv("bottle", 0, 0.6, 0.52, 0.71))))
    assert (single["adv_auroc_ci_low"], single["adv_auroc_ci_high"], single["adv_auroc_std"]) == (0.52, 0.71, 0.0)


def test_the_interval_covers_the_spread_over_seeds_that_the_mean_of_row_bounds_misses():
    """Seeds at 0.2, 0.5 and 0.8, each with a narrow image-level interval: the mean of the row bounds is about
    [0.48, 0.52]; the interval of the seed mean spans most of the seed values' range."""
    rows = board(*(adv("bottle", seed, v, v - 0.02, v + 0.02) for seed, v in enumerate((0.2, 0.5, 0.8))))
    line = only_line(aggregate(rows))
    assert line["adv_auroc_ci_low"] < 0.3 and line["adv_auroc_ci_high"] > 0.7


def test_an_auroc_of_zero_on_every_seed_gets_the_wilson_interval_not_a_point():
    """0.000 [0.00, 0.00] on 3 seeds of 59 eval images: [0, z^2 / (177 + z^2)] by hand."""
    rows = board(*(adv("bottle", seed, 0.0, 0.0, 0.0, n_eval=59) for seed in range(3)))
    line = only_line(aggregate(rows))
    z = 1.959963984540054
    assert (line["adv_auroc_ci_low"], line["adv_auroc_ci_high"]) == pytest.approx((0.0, z * z / (177 + z * z)))


def test_a_value_is_undefined_when_some_row_it_summarises_lacks_it():
    no_interval = only_line(aggregate(board(adv("bottle", 0, 0.6, 0.5, 0.7), adv("bottle", 1, 0.8, None, None))))
    assert no_interval["adv_auroc_mean"] == pytest.approx(0.7)
    assert math.isnan(no_interval["adv_auroc_ci_low"]) and math.isnan(no_interval["adv_auroc_ci_high"])
    no_mean = only_line(aggregate(board(adv("bottle", 0, 0.6, 0.5, 0.7), adv("bottle", 1, None, None, None))))
    assert math.isnan(no_mean["adv_auroc_mean"]) and math.isnan(no_mean["adv_auroc_std"])


def test_noise_and_clean_only_rows_keep_lines_of_their_own_and_the_noise_sits_beside_the_attack():
    rows = board(row(attack="pgd", surrogate="score", adv_auroc=0.3, clean_auroc=0.97),
                 row(attack="pgd", surrogate="linear", adv_auroc=0.7, clean_auroc=0.97),
                 row(attack="noise", surrogate="none", adv_auroc=0.9, clean_auroc=0.97),
                 row(attack="none", surrogate="none", eps="", clean_auroc=0.95))
    summary = aggregate(rows)
    assert len(summary) == 4
    white_box = only_line(summary, attack="pgd", surrogate="score")
    assert (white_box["adv_auroc_mean"], white_box["noise_adv_auroc_mean"]) == (0.3, 0.9)
    assert only_line(summary, attack="pgd", surrogate="linear")["noise_adv_auroc_mean"] == 0.9
    control = only_line(summary, attack="noise")
    assert control["adv_auroc_mean"] == 0.9 and math.isnan(control["noise_adv_auroc_mean"])
    clean_only = only_line(summary, attack="none")
    assert clean_only["clean_auroc_mean"] == 0.95 and math.isnan(clean_only["adv_auroc_mean"])


def test_the_noise_control_must_match_seed_and_eps_but_not_the_calibrator():
    attacks = [row(seed=seed, eps=eps, adv_auroc=0.3) for seed in (0, 1) for eps in ("2/255", "8/255")]
    controls = [row(attack="noise", surrogate="none", calibrator="none", seed=0, eps="2/255", adv_auroc=0.9,
                    adv_auroc_ci_low=0.85, adv_auroc_ci_high=0.95)]
    summary = aggregate(board(*attacks, *controls))
    assert math.isnan(only_line(summary, attack="pgd", eps="2/255")["noise_adv_auroc_mean"])  # seed 1 has none
    controls.append(row(attack="noise", surrogate="none", calibrator="none", seed=1, eps="2/255", adv_auroc=0.8,
                        adv_auroc_ci_low=0.75, adv_auroc_ci_high=0.85))
    summary = aggregate(board(*attacks, *controls))
    line = only_line(summary, attack="pgd", eps="2/255")
    assert line["noise_adv_auroc_mean"] == pytest.approx(0.85)
    assert (line["noise_adv_auroc_ci_low"], line["noise_adv_auroc_ci_high"]) == \
        pytest.approx(two_level_by_hand([0.9, 0.8], [0.85, 0.75], [0.95, 0.85]))
    assert math.isnan(only_line(summary, attack="pgd", eps="8/255")["noise_adv_auroc_mean"])


@pytest.mark.parametrize("other", [{"precision": "float16"}, {"round_8bit": "True"}, {"weights": "random"},
                                   {"calib_fraction": "0.5"}, {"options": '{"attack.pgd.steps": 20}'}])
def test_rows_of_other_settings_are_not_averaged_together(other):
    summary = aggregate(board(row(adv_auroc=0.3), row(adv_auroc=0.5, **other)))
    assert sorted(summary["adv_auroc_mean"]) == [0.3, 0.5]


def test_thread_counts():
    assert thread_counts(board(row(torch_threads=2), row(torch_threads=12), row(torch_threads=None))) == ["2", "12"]
    assert thread_counts(board(row(torch_threads=1), row(torch_threads=1))) == ["1"]


def test_summary_table_shows_mean_std_interval_and_noise_column():
    rows = board(adv("bottle", 0, 0.6, 0.5, 0.7), adv("bottle", 1, 0.8, 0.7, 0.9),
                 row(attack="noise", surrogate="none", seed=0, adv_auroc=0.9),
                 row(attack="noise", surrogate="none", seed=1, adv_auroc=0.92))
    console = Console(file=io.StringIO(), width=250)
    print_table(console, summary_table(summarise(rows), "t", intervals=True))
    text = console.file.getvalue()
    low, high = two_level_by_hand([0.6, 0.8], [0.5, 0.7], [0.7, 0.9])
    assert "noise" in text and "0.700±0.141" in text and f"[{low:.2f}, {high:.2f}]" in text
    assert "0.910±0.014" in text  # the noise control's mean +- std, beside the attack and on its own line
    assert text.count("0.910±0.014") == 2


def test_leaderboard_cli_warns_once_about_mixed_thread_counts(tmp_path, monkeypatch, capsys):
    rows = [row(seed=0, adv_auroc=0.3, torch_threads=1), row(seed=1, adv_auroc=0.4, torch_threads=2),
            row(attack="noise", surrogate="none", seed=0, adv_auroc=0.9, torch_threads=1),
            row(attack="noise", surrogate="none", seed=1, adv_auroc=0.9, torch_threads=2)]
    path = write_board(tmp_path / "board.csv", rows)
    args = ("leaderboard", path, "--published", tmp_path / "none.csv")
    code, out, err = run_robustad(monkeypatch, capsys, *args)
    assert code == 0
    assert err.count("\n") == 1 and "different torch_threads (1, 2)" in err
    assert "noise" in out and "0.350±0.071" in out and "0.900" in out
    code, out, err = run_robustad(monkeypatch, capsys, *args, "--where", "torch_threads=1")
    assert (code, err) == (0, "")


def test_leaderboard_cli_empty_or_unmatched_file_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    path = write_board(tmp_path / "board.csv", [])
    code, out, err = run_robustad(monkeypatch, capsys, "leaderboard", path)
    assert (code, out) == (2, "") and err.count("\n") == 1 and "has no rows" in err
    write_board(path, [row(adv_auroc=0.3)])
    code, out, err = run_robustad(monkeypatch, capsys, "leaderboard", path, "--where", "seed=7")
    assert (code, out) == (2, "") and err.strip() == f"robustad: error: no row of {path} matches --where seed=7"


def test_summary_table_leaves_the_noise_column_out_without_a_control_and_keeps_brackets_literal():
    console = Console(file=io.StringIO(), width=250)
    print_table(console, summary_table(summarise(board(row(adv_auroc=0.3))), "[mean] board"))
    text = console.file.getvalue()
    assert "noise" not in text and "0.300" in text and "[mean] board" in text


def test_two_image_sets_sharing_a_category_name_are_not_averaged_together():
    rows = board(row(data_id="first", clean_auroc=0.9), row(data_id="second", clean_auroc=0.5))
    summary = aggregate(rows)
    assert sorted(summary["clean_auroc_mean"]) == [0.5, 0.9] and set(summary["data"]) == {"first", "second"}
    one_set = aggregate(board(row(seed=0, clean_auroc=0.9), row(seed=1, clean_auroc=0.5)))
    assert list(one_set["clean_auroc_mean"]) == [0.7] and list(one_set["data"]) == [""]


def test_a_row_copied_by_hand_counts_once(tmp_path, monkeypatch, capsys):
    from robustad.results.frame import load_rows

    first, second = row(seed=0, clean_auroc=0.9), row(seed=1, clean_auroc=0.5)
    with pytest.warns(UserWarning, match="2 row"):
        assert len(load_rows(write_board(tmp_path / "b.csv", [first, first, second, second]), [])) == 2
    path = write_board(tmp_path / "board.csv", [first, second, second, second])
    with pytest.warns(UserWarning, match="2 row"):
        assert list(aggregate(load_rows(path, []))["clean_auroc_mean"]) == [pytest.approx(0.7)]
    code, out, err = run_robustad(monkeypatch, capsys, "leaderboard", path)
    assert code == 0 and "repeat the key of an earlier row" in err


def test_rows_from_before_a_column_meet_the_rows_that_record_its_default(tmp_path):
    """A leaderboard grown over releases: the noise control written before ``chunk``, ``norm`` and ``cert_alpha``
    were columns (empty cells) is the control of an attack written after (``1``, ``linf``, ``0.001``)."""
    from robustad.results.entries import with_entries
    from robustad.results.frame import load_rows, model_key

    newer = {"protocol": "1", "defense": "none", "bpda": "none", "eot_samples": "1", "chunk": "1", "flag": "entropy",
             "flag_fpr": "0.05", "norm": "linf", "cert_alpha": "0.001", "white_box": "True"}
    attack = row(attack="pgd", adv_auroc=0.3, **newer)
    control = row(attack="noise", surrogate="none", adv_auroc=0.9)
    rows = load_rows(write_board(tmp_path / "board.csv", [attack, control]), [])
    assert model_key(rows).nunique() == 1 and with_entries(rows)["entry"].nunique() == 1
    summary = aggregate(rows)
    assert only_line(summary, attack="pgd")["noise_adv_auroc_mean"] == 0.9
    other = row(attack="noise", surrogate="none", adv_auroc=0.9, chunk="8")  # a value that is not the default
    assert model_key(load_rows(write_board(tmp_path / "other.csv", [attack, other]), [])).nunique() == 2


def corrupted(name: str, severity: int, auroc: float) -> dict[str, str]:
    options = '{"attack.corruption": {"corruption": "%s"}, "dataset.mvtec": {}}' % name
    return row(attack="corruption", surrogate="none", norm="corruption", eps=severity, eps_value=severity,
               corruption=name, options=options, clean_auroc=0.95, adv_auroc=auroc)


def test_corruption_lines_are_labelled_by_corruption_and_severity_not_an_options_digest(tmp_path, monkeypatch,
                                                                                        capsys):
    rows = [corrupted("gaussian_noise", 1, 0.81), corrupted("gaussian_noise", 3, 0.62),
            corrupted("defocus_blur", 1, 0.93), corrupted("defocus_blur", 3, 0.74)]
    path = write_board(tmp_path / "board.csv", rows)
    code, out, err = run_robustad(monkeypatch, capsys, "leaderboard", path, "--published", tmp_path / "none.csv",
                                  "--format", "csv")
    assert (code, err) == (0, "")
    lines = pd.read_csv(io.StringIO(out))
    assert "options" not in lines and "#" not in out
    found = {(line.corruption, int(line.eps)): line.adv_auroc_mean for line in lines.itertuples()}
    assert found == {("gaussian_noise", 1): 0.81, ("gaussian_noise", 3): 0.62, ("defocus_blur", 1): 0.93,
                     ("defocus_blur", 3): 0.74}
    code, out, _ = run_robustad(monkeypatch, capsys, "leaderboard", path, "--published", tmp_path / "none.csv",
                                "--columns", "corruption,adv_auroc", "--where", "eps=3")
    assert code == 0 and "gaussian_noise" in out and "0.620" in out and "0.930" not in out


def test_lines_that_differ_in_other_options_keep_the_digest():
    rows = [row(options='{"attack.pgd": {"steps": 10}}', adv_auroc=0.3),
            row(options='{"attack.pgd": {"steps": 20}}', adv_auroc=0.2)]
    summary = summarise(board(*rows))
    assert summary.settings == ["options"] and all(summary.lines["options"].str.match(r"#[0-9a-f]{6}$"))
