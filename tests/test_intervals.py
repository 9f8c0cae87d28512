"""Bootstrap intervals against independent resampling loops; the vectorised metrics against robustad.metrics."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from robustad import metrics, resampled
from robustad.errors import RobustadError
from robustad.intervals import Intervals, bootstrap_intervals, certificate_intervals, draw_indices


def synthetic_eval(n: int, seed: int) -> dict[str, np.ndarray]:
    """Labels, scores and probabilities rounded to one decimal (many ties, p of exactly 0, 0.5 and 1)."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(int)
    labels[:2] = [0, 1]
    scores = np.round(rng.normal(size=n) + 1.5 * labels, 1)
    adv_scores = np.round(scores - (2 * labels - 1) * rng.random(n), 1)
    return {"labels": labels, "clean_scores": scores, "clean_probs": np.round(rng.random(n) * 0.6 + 0.4 * labels, 1),
            "adv_scores": adv_scores, "adv_probs": np.round(rng.random(n), 1)}


def scalar_row(data: dict[str, np.ndarray], rows: np.ndarray, threshold: float) -> dict[str, float | None]:
    """``robustad.metrics`` (sklearn-based) on the images ``rows``, keyed like a leaderboard row."""
    y = data["labels"][rows]
    clean, adv = data["clean_probs"][rows], data["adv_probs"][rows]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", metrics.UndefinedMetricWarning)
        row = {f"clean_{k}": v for k, v in metrics.image_metrics(y, data["clean_scores"][rows], clean).items()}
        row.update({f"adv_{k}": v for k, v in metrics.image_metrics(y, data["adv_scores"][rows], adv).items()})
    row["flag_auroc"] = metrics.flag_auroc(clean, adv)
    row["flag_tpr"] = metrics.flag_tpr(adv, threshold)
    row["evasion_rate"] = metrics.evasion_rate(y, adv, threshold)
    return row


def vectorised_rows(data: dict[str, np.ndarray], counts: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    y = data["labels"]
    out = {f"clean_{k}": v for k, v in resampled.image_metrics(counts, y, data["clean_scores"],
                                                               data["clean_probs"]).items()}
    out.update({f"adv_{k}": v for k, v in resampled.image_metrics(counts, y, data["adv_scores"],
                                                                  data["adv_probs"]).items()})
    flagged = metrics.flagged(data["adv_probs"], threshold)
    out["flag_auroc"] = resampled.flag_auroc(counts, data["clean_probs"], data["adv_probs"])
    out["flag_tpr"] = resampled.flag_tpr(counts, flagged)
    out["evasion_rate"] = resampled.evasion_rate(counts, y, data["adv_probs"], flagged)
    return out


@pytest.mark.parametrize(("n", "seed"), [(8, 0), (40, 1)])
def test_every_vectorised_metric_equals_the_scalar_metric_on_every_resample(n, seed):
    data = synthetic_eval(n, seed)
    threshold = metrics.flag_threshold(np.round(np.linspace(0.05, 0.6, 10), 2))
    indices = draw_indices(n, 40, seed)
    indices[0] = np.flatnonzero(data["labels"] == 0)[0]  # normal images only: ranking metrics undefined
    indices[1] = np.flatnonzero(data["labels"] == 1)[0]  # anomalous images only: the same
    vectorised = vectorised_rows(data, resampled.counts_of(indices, n), threshold)
    undefined = 0
    for r, rows in enumerate(indices):
        for column, expected in scalar_row(data, rows, threshold).items():
            got = vectorised[column][r]
            if expected is None:
                undefined += 1
                assert math.isnan(got), (column, r)
            else:
                assert got == pytest.approx(expected, abs=1e-12, rel=0), (column, r)
    assert undefined > 0  # the comparison covered undefined resamples too


def test_counts_record_how_often_each_image_was_drawn():
    counts = resampled.counts_of(np.array([[0, 0, 3, 1], [2, 2, 2, 2]]), 4)
    np.testing.assert_array_equal(counts, [[2, 1, 0, 1], [0, 0, 4, 0]])


def test_the_draw_is_the_documented_one():
    expected = np.random.default_rng(5).integers(0, 7, size=(3, 7))
    np.testing.assert_array_equal(draw_indices(7, 3, 5), expected)


# ------------------------------------------------------------------------------------------ against a plain loop

HAND_MADE = {
    "labels": np.array([0, 0, 0, 0, 1, 1, 1, 0, 1, 0]),
    "clean_scores": np.array([0.1, 0.2, 0.2, 0.4, 0.5, 0.5, 0.9, 0.3, 0.2, 0.6]),
    "clean_probs": np.array([0.05, 0.2, 0.2, 0.45, 0.6, 0.6, 0.95, 0.3, 0.2, 0.7]),
    "adv_scores": np.array([0.5, 0.6, 0.2, 0.7, 0.3, 0.1, 0.6, 0.3, 0.1, 0.6]),
    "adv_probs": np.array([0.6, 0.7, 0.2, 0.8, 0.4, 0.1, 0.7, 0.3, 0.1, 0.7]),
}
THRESHOLD = 0.6  # nats: flags 0.3 < p < 0.7 (H(0.3) = H(0.7) = 0.611)


def loop_metrics(y: np.ndarray, s: np.ndarray, p: np.ndarray) -> tuple[dict[str, float | None], np.ndarray]:
    """One resample's image metrics (sklearn and direct counting, independent of robustad) and its entropies."""
    both = 0 < y.sum() < y.size
    tp, fp = np.sum((p >= 0.5) & (y == 1)), np.sum((p >= 0.5) & (y == 0))
    fn, tn = np.sum((p < 0.5) & (y == 1)), np.sum((p < 0.5) & (y == 0))
    f1_at = [2 * np.sum((s >= t) & (y == 1)) / (np.sum(s >= t) + y.sum()) for t in np.unique(s)]
    gaps = []
    for b in range(15):
        in_bin = (p >= b / 15) & ((p < (b + 1) / 15) if b < 14 else (p <= 1))
        gaps.append(abs(y[in_bin].sum() - p[in_bin].sum()))
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.nan_to_num(-p * np.log(p)) + np.nan_to_num(-(1 - p) * np.log(1 - p))
    return {
        "auroc": roc_auc_score(y, s) if both else None,
        "ap": average_precision_score(y, s) if both else None,
        "f1": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else None,
        "f1_max": max(f1_at) if both else None,
        "gmean": math.sqrt(tp / (tp + fn) * tn / (tn + fp)) if both else None,
        "ece": sum(gaps) / y.size,
        "brier": np.mean((p - y) ** 2),
        "nll": -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)),
        "entropy": h.mean(),
    }, h


def test_bootstrap_matches_an_independent_resampling_loop():
    data, resamples, seed = HAND_MADE, 100, 0
    y = data["labels"]
    draws = np.random.default_rng(seed).integers(0, y.size, size=(resamples, y.size))
    samples: dict[str, list[float]] = {}
    for rows in draws:
        clean, h_clean = loop_metrics(y[rows], data["clean_scores"][rows], data["clean_probs"][rows])
        adv, h_adv = loop_metrics(y[rows], data["adv_scores"][rows], data["adv_probs"][rows])
        row = {**{f"clean_{k}": v for k, v in clean.items()}, **{f"adv_{k}": v for k, v in adv.items()}}
        row["flag_auroc"] = roc_auc_score(np.repeat([0, 1], y.size), np.concatenate([h_clean, h_adv]))
        flagged = h_adv > THRESHOLD
        row["flag_tpr"] = flagged.mean()
        wrong = (data["adv_probs"][rows] >= 0.5) != (y[rows] == 1)
        row["evasion_rate"] = np.mean(wrong & ~flagged)
        for column, value in row.items():
            samples.setdefault(column, [])
            if value is not None:
                samples[column].append(value)

    result = bootstrap_intervals(**data, flag_threshold=THRESHOLD, resamples=resamples, seed=seed)
    assert list(result.bounds) == [f"{prefix}_{m}" for prefix in ("clean", "adv") for m in metrics.IMAGE_METRICS] \
        + list(metrics.ATTACK_METRICS)
    for column, values in samples.items():
        low, high = np.percentile(values, [2.5, 97.5])
        assert result.bounds[column] == pytest.approx((low, high), abs=1e-12), column
        assert result.skipped[column] == resamples - len(values), column
    # 0.6 ** 10 of the draws hold no anomalous image (2 of these 100): skipped for the ranking metrics only
    assert 0 < result.skipped["clean_auroc"] == result.skipped["adv_gmean"] < 10
    assert result.skipped["clean_brier"] == 0


def test_level_sets_the_percentiles():
    data = synthetic_eval(30, 2)
    wide = bootstrap_intervals(data["labels"], data["clean_scores"], data["clean_probs"], resamples=200, seed=1)
    narrow = bootstrap_intervals(data["labels"], data["clean_scores"], data["clean_probs"], resamples=200, seed=1,
                                 level=0.5)
    counts = resampled.counts_of(draw_indices(30, 200, 1), 30)
    brier = resampled.brier(counts, data["labels"], data["clean_probs"])
    assert narrow.bounds["clean_brier"] == pytest.approx(tuple(np.percentile(brier, [25, 75])), abs=1e-15)
    assert wide.bounds["clean_brier"] == pytest.approx(tuple(np.percentile(brier, [2.5, 97.5])), abs=1e-15)


# ------------------------------------------------------------------------------------------ columns and edge cases

def test_columns_follow_what_was_passed():
    data = synthetic_eval(20, 3)
    clean_only = bootstrap_intervals(data["labels"], data["clean_scores"], data["clean_probs"], resamples=50)
    assert list(clean_only.bounds) == [f"clean_{m}" for m in metrics.IMAGE_METRICS]
    no_threshold = bootstrap_intervals(**data, resamples=50)
    assert list(no_threshold.bounds)[9:] == [f"adv_{m}" for m in metrics.IMAGE_METRICS] + ["flag_auroc"]


def test_metric_undefined_in_every_resample_has_no_bounds():
    labels = np.zeros(6, dtype=int)
    probs = np.array([0.1, 0.2, 0.6, 0.3, 0.2, 0.1])
    result = bootstrap_intervals(labels, probs, probs, resamples=40)
    assert result.bounds["clean_auroc"] == (None, None) and result.skipped["clean_auroc"] == 40
    low, high = result.bounds["clean_brier"]
    assert 0 < low <= high and result.skipped["clean_brier"] == 0


def test_containing_widens_only_as_far_as_the_point_estimate():
    intervals = Intervals({"a": (0.2, 0.4), "b": (0.2, 0.4), "c": (None, None), "d": (0.1, 0.3)},
                          {"a": 0, "b": 0, "c": 9, "d": 0})
    widened = intervals.containing({"a": 0.1, "b": 0.3, "c": 0.5, "d": None})
    assert widened.bounds == {"a": (0.1, 0.4), "b": (0.2, 0.4), "c": (0.5, 0.5), "d": (0.1, 0.3)}
    assert widened.skipped == intervals.skipped
    assert intervals.bounds["a"] == (0.2, 0.4)  # the original is unchanged


def test_leaderboard_intervals_hold_the_point_estimate():
    # perfectly calibrated bins (p = 0.5: half anomalous; p = 0.1: one in ten) give ECE 0 on the full set, but
    # resamples unbalance the bins, so the raw percentile interval of ECE lies above 0
    labels = np.array([1] * 10 + [0] * 10 + [1] * 2 + [0] * 18)
    probs = np.array([0.5] * 20 + [0.1] * 20)
    scores = probs + np.linspace(0, 0.01, 40)
    row = {f"clean_{k}": v for k, v in metrics.image_metrics(labels, scores, probs).items()}
    assert row["clean_ece"] == pytest.approx(0.0, abs=1e-15)
    raw = bootstrap_intervals(labels, scores, probs, resamples=500, seed=4)
    assert raw.bounds["clean_ece"][0] > row["clean_ece"]
    final = raw.containing(row)
    for column, (low, high) in final.bounds.items():
        assert low <= row[column] <= high, column
    assert final.bounds["clean_ece"] == (row["clean_ece"], raw.bounds["clean_ece"][1])


def test_certificate_interval_matches_sklearn_on_the_same_draws_with_infinite_bounds():
    rng = np.random.default_rng(3)
    labels = np.array([0, 1] * 15)
    worst = np.round(rng.normal(size=30) + labels, 1)
    worst[[0, 4]] = np.inf  # normal images whose upper bound is vacuous
    worst[[1]] = -np.inf  # an anomalous image whose lower bound is vacuous
    finite = np.clip(worst, -1e300, 1e300)  # sklearn refuses infinities; the order is what matters
    values = [roc_auc_score(labels[rows], finite[rows]) for rows in draw_indices(30, 300, 7)
              if 0 < labels[rows].sum() < 30]
    low, high = certificate_intervals(labels, worst, resamples=300, seed=7).bounds["cert_auroc"]
    assert (low, high) == pytest.approx(tuple(np.percentile(values, [2.5, 97.5])))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"adv_scores": [0.1, 0.2, 0.3]}, "pass both adv_scores and adv_probs, or neither"),
    ({"adv_scores": [0.1, 0.2], "adv_probs": [0.1, 0.2]}, "labels has 3 entries but adv_scores has 2"),
    ({"adv_scores": [0.1, 0.2, 0.3], "adv_probs": [0.1, 0.2, 0.3], "flag_threshold": float("inf")},
     "threshold must be a finite number"),
    ({"resamples": 0}, "resamples must be an integer >= 1, got 0"),
    ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ({"level": 1.0}, r"level must be a number in \(0, 1\), got 1.0"),
])
def test_bad_input_is_a_one_line_error(kwargs, message):
    with pytest.raises(RobustadError, match=message) as error:
        bootstrap_intervals([0, 1, 1], [0.1, 0.4, 0.3], [0.2, 0.6, 0.5], **kwargs)
    assert "\n" not in str(error.value)
