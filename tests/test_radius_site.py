"""The site from the radius (issue 39): a ranking by median radius, the share of images not yet moved against eps
from per-image radii, and eps curves whose bands are the two-level interval over seeds; on hand-made rows."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from robustad.results.entries import ranking, with_entries, with_radius
from robustad.results.figures import eps_curves, unmoved_curves
from robustad.results.site import build_site
from tests.boards import board, row

EPS = "8/255"


def radius_rows():
    """alpha: medians 2/255 and 4/255 over its seeds; beta: 5/255 and censored (more than half never moved)."""
    rows = []
    for backbone, medians in (("alpha", (2 / 255, 4 / 255)), ("beta", (5 / 255, None))):
        for seed, median in enumerate(medians):
            for attack in ("pgd", "fgsm"):  # one search serves both attacks of the surrogate
                rows.append(row(backbone=backbone, seed=seed, eps=EPS, attack=attack, surrogate="score",
                                white_box=True, steps=10 if attack == "pgd" else 1, adv_auroc=0.0,
                                clean_auroc=0.95, n_eval=4, radius_median=median, radius_eps_max=8 / 255,
                                radius_tol=8 / 255 / 64, radius_unmoved=0.75 if median is None else 0.0))
    return board(*rows)


def test_the_ranking_by_median_radius_takes_the_mean_over_seeds_and_puts_a_censored_median_first():
    rows = with_entries(radius_rows())
    lines = with_radius(ranking(rows), rows)
    names = rows.groupby("entry")["backbone"].first()
    white = lines[lines["threat"] == "white-box"].set_index("entry")
    assert white.loc[names[names == "alpha"].index[0], "radius_median"] == pytest.approx(3 / 255)
    assert white.loc[names[names == "beta"].index[0], "radius_median"] == np.inf
    ranks = white.sort_values("radius_rank")
    assert list(names[ranks.index]) == ["beta", "alpha"] and list(ranks["radius_rank"]) == [1, 2]
    assert (lines["adv_auroc_mean"] == 0).all()  # the worst AUROC ties: only the radius ranks them


def test_lines_without_a_search_have_no_radius():
    rows = with_entries(radius_rows().drop(columns=["radius_median", "radius_eps_max"]))
    lines = with_radius(ranking(rows), rows)
    assert lines["radius_median"].isna().all() and lines["radius_rank"].isna().all()


def test_the_share_not_yet_moved_is_counted_from_the_per_image_radii():
    rows = radius_rows()
    radii = {0: [0.0, 0.01, 0.02, np.inf], 1: [0.005, 0.03, np.inf, np.inf]}
    scores = pd.DataFrame([{"cell_hash": r["cell_hash"], "radius": value}
                           for _, r in rows[rows["backbone"] == "alpha"].iterrows()
                           for value in radii[int(r["seed"])]])
    curves = unmoved_curves(rows[rows["backbone"] == "alpha"], scores, points=5)
    pooled = np.array([0.0, 0.01, 0.02, np.inf, 0.005, 0.03, np.inf, np.inf])  # one search per seed, pooled
    grid = np.linspace(0, 8 / 255, 5)
    assert list(curves["eps"]) == pytest.approx(list(grid))
    assert list(curves["share"]) == pytest.approx([np.mean(pooled > e) for e in grid])
    assert curves["share"].iloc[0] == pytest.approx(7 / 8) and curves["share"].iloc[-1] == pytest.approx(3 / 8)
    assert unmoved_curves(rows, None).empty


def test_eps_curve_bands_are_the_two_level_interval_not_the_mean_of_seed_endpoints():
    """Seeds at 0.2, 0.5 and 0.8, each with a narrow image interval: the mean of their endpoints is [0.49, 0.51];
    a seed bootstrap of three draws puts 1/27 > 2.5 % of its mass on each of 0.2 and 0.8, so the interval reaches
    near both (brute force over the 27 equally likely draws)."""
    values = {0: 0.2, 1: 0.5, 2: 0.8}
    rows = board(*[row(seed=seed, eps=EPS, attack="pgd", surrogate="score", calibrator=calibrator, n_eval=59,
                       adv_entropy=v, adv_entropy_ci_low=v - 0.01, adv_entropy_ci_high=v + 0.01)
                   for (seed, v), calibrator in itertools.product(values.items(), ("platt", "isotonic"))])
    [curve] = eps_curves(rows, "entropy").to_dict(orient="records")
    means = sorted(np.mean(draw) for draw in itertools.product(values.values(), repeat=3))
    assert curve["mean"] == pytest.approx(0.5)
    low, high = np.percentile(means, 2.5, method="inverted_cdf"), np.percentile(means, 97.5, method="inverted_cdf")
    assert (low, high) == pytest.approx((0.2, 0.8))
    assert curve["ci_low"] == pytest.approx(low, abs=0.05) and curve["ci_high"] == pytest.approx(high, abs=0.05)
    assert curve["ci_high"] - curve["ci_low"] > 20 * 0.02


def test_the_site_shows_the_radius_column_and_the_unmoved_curve(tmp_path):
    rows = radius_rows()
    scores = pd.DataFrame([{"cell_hash": h, "radius": r, "calibrator": "platt", "label": 0, "clean_prob": 0.5,
                            "adv_prob": 0.5} for h in rows["cell_hash"] for r in (0.01, np.inf)])
    page = build_site(rows, tmp_path / "site", scores=scores)
    text = page.read_text()
    assert "median radius" in text and "radius rank" in text and "3.00/255" in text and "&gt; grid" in text
    assert len(list((tmp_path / "site" / "entries").glob("*/unmoved-mvtec.png"))) == 2
