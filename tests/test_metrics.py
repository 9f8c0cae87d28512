"""robustad.metrics against independent computations: sklearn, torchmetrics, brute force and hand arithmetic."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from skimage.measure import label as connected_components
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    roc_auc_score,
)
from torchmetrics.classification import BinaryCalibrationError

from robustad import metrics
from robustad.errors import RobustadError
from robustad.metrics import UndefinedMetricWarning


def random_binary(n: int, seed: int, *, ties: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores where anomalous images score higher on average; rounding creates ties."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(int)
    scores = rng.normal(size=n) + 1.2 * labels
    return labels, np.round(scores, 1) if ties else scores


# ------------------------------------------------------------------------------------------ ranking metrics

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_and_ap_match_sklearn(seed):
    labels, scores = random_binary(200, seed)
    assert metrics.auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert metrics.average_precision(labels, scores) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-12)


def test_auroc_of_constant_scores_is_one_half():
    assert metrics.auroc([0, 1, 0, 1], [3.0, 3.0, 3.0, 3.0]) == 0.5


def brute_force_f1(labels: np.ndarray, scores: np.ndarray) -> list[tuple[float, float]]:
    """(threshold, F1 of score >= threshold) for every distinct score, by direct counting."""
    out = []
    for threshold in np.unique(scores):
        predicted = scores >= threshold
        tp = np.sum(predicted & (labels == 1))
        fp = np.sum(predicted & (labels == 0))
        fn = np.sum(~predicted & (labels == 1))
        out.append((float(threshold), 2 * tp / (2 * tp + fp + fn)))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_f1_max_and_optimal_threshold_match_brute_force(seed):
    labels, scores = random_binary(150, seed)
    curve = brute_force_f1(labels, scores)
    best = max(f for _, f in curve)
    assert metrics.f1_max(labels, scores) == pytest.approx(best, abs=1e-12)
    lowest_best = min(t for t, f in curve if f >= best - 1e-12)
    next_lower = max(t for t, _ in curve if t < lowest_best)
    assert metrics.f1_optimal_threshold(labels, scores) == pytest.approx((lowest_best + next_lower) / 2, abs=1e-15)


def test_f1_optimal_threshold_with_nothing_lower_is_the_lowest_score():
    # score >= 2 gives TP=1, FP=0, FN=1 (F1 = 2/3); score >= 1 gives TP=2, FP=2, FN=0 (F1 = 4/6 = 2/3): the tie
    # goes to the lower threshold 1.0, and no calib score lies below it.
    assert metrics.f1_optimal_threshold([0, 1, 0, 1], [1.0, 1.0, 1.5, 2.0]) == 1.0


def test_f1_optimal_threshold_is_midway_below_the_lowest_anomaly_on_separated_data():
    # every rule score >= t with t in (0.2, 0.5] is perfect (F1 = 1); the threshold sits midway, 0.35
    assert metrics.f1_optimal_threshold([0, 0, 1, 1], [0.1, 0.2, 0.5, 0.6]) == pytest.approx(0.35, abs=1e-15)


def test_f1_optimal_threshold_midpoint_skips_tied_scores():
    # score >= 0.7: TP 1, FP 0, FN 2 -> F1 2/4; >= 0.3: TP 3, FP 1, FN 0 -> 6/7 (best); >= 0.1: TP 3, FP 2 -> 6/8.
    # The next lower distinct score below the three tied 0.3 is 0.1: threshold (0.1 + 0.3) / 2 = 0.2.
    tau = metrics.f1_optimal_threshold([0, 0, 1, 1, 1], [0.1, 0.3, 0.3, 0.3, 0.7])
    assert tau == pytest.approx(0.2, abs=1e-15)


# ------------------------------------------------------------------------------------------ decision metrics

@pytest.mark.parametrize("seed", [0, 1])
def test_f1_matches_sklearn_at_one_half(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random(100) < 0.5).astype(int)
    probs = np.clip(0.3 * labels + rng.random(100) * 0.7, 0, 1)
    probs[:3] = 0.5  # exactly 0.5 counts as anomalous
    assert metrics.f1(labels, probs) == pytest.approx(f1_score(labels, probs >= 0.5), abs=1e-12)


def test_gmean_hand_computed():
    labels = [1, 1, 1, 0, 0, 0, 0]
    probs = [0.9, 0.5, 0.2, 0.1, 0.4, 0.49, 0.7]
    # TP = 2 (0.9, 0.5), FN = 1 (0.2): TPR = 2/3; TN = 3 (0.1, 0.4, 0.49), FP = 1 (0.7): TNR = 3/4.
    assert metrics.gmean(labels, probs) == pytest.approx(math.sqrt(2 / 3 * 3 / 4))


# ------------------------------------------------------------------------------------------ calibration metrics

ECE_LABELS = [0, 1, 1, 1, 0, 1]
ECE_PROBS = [0.10, 0.12, 0.95, 0.97, 1.00, 0.50]


def test_ece_hand_computed():
    # 15 bins of width 1/15: 0.10, 0.12 in bin 1 [0.0667, 0.1333); 0.50 in bin 7; 0.95, 0.97 and 1.00 in
    # the last bin [0.9333, 1] (p = 1.0 joins the last bin).
    # bin 1: mean p 0.11, frequency 1/2  -> |0.5 - 0.11| * 2/6 = 0.78 / 6
    # bin 7: mean p 0.50, frequency 1    -> |1 - 0.5| * 1/6 = 0.50 / 6
    # bin 14: mean p 2.92/3, frequency 2/3 -> |2/3 - 2.92/3| * 3/6 = 0.92 / 6
    assert metrics.ece(ECE_LABELS, ECE_PROBS) == pytest.approx((0.78 + 0.50 + 0.92) / 6)


def test_reliability_diagram_hand_computed():
    bins = metrics.reliability_diagram(ECE_LABELS, ECE_PROBS)
    assert len(bins) == 15
    assert bins[0] == {"lower": 0.0, "upper": pytest.approx(1 / 15), "count": 0,
                       "mean_confidence": None, "observed_frequency": None}
    assert bins[1]["count"] == 2
    assert bins[1]["mean_confidence"] == pytest.approx(0.11)
    assert bins[1]["observed_frequency"] == 0.5
    assert bins[14]["upper"] == 1.0 and bins[14]["count"] == 3
    assert bins[14]["observed_frequency"] == pytest.approx(2 / 3)
    assert sum(b["count"] for b in bins) == 6


def test_bin_lower_edges_are_inclusive():
    edge = np.linspace(0, 1, 16)[3]  # 3/15 exactly as the bins compute it
    bins = metrics.reliability_diagram([1, 0], [edge, np.nextafter(edge, 0)])
    assert bins[3]["count"] == 1 and bins[2]["count"] == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ece_matches_torchmetrics(seed):
    rng = np.random.default_rng(seed)
    probs = rng.random(500)
    labels = (rng.random(500) < probs**2).astype(int)  # deliberately miscalibrated
    reference = BinaryCalibrationError(n_bins=15, norm="l1")(torch.tensor(probs), torch.tensor(labels))
    assert metrics.ece(labels, probs) == pytest.approx(float(reference), abs=1e-10)


def test_brier_and_nll_match_sklearn():
    rng = np.random.default_rng(0)
    labels = (rng.random(80) < 0.5).astype(int)
    probs = rng.uniform(0.01, 0.99, 80)
    assert metrics.brier(labels, probs) == pytest.approx(brier_score_loss(labels, probs), abs=1e-12)
    assert metrics.nll(labels, probs) == pytest.approx(log_loss(labels, probs), abs=1e-10)


def test_nll_clips_certain_mistakes():
    assert metrics.nll([1, 0], [0.0, 0.0]) == pytest.approx(-math.log(1e-12) / 2)


def test_entropy_values():
    assert metrics.entropy([0.5]) == pytest.approx(math.log(2))
    assert metrics.entropy([0.0, 1.0]) == 0.0
    p = 0.2
    assert metrics.entropy([p, 0.5]) == pytest.approx((-p * math.log(p) - (1 - p) * math.log(1 - p) + math.log(2)) / 2)


def test_flag_auroc_hand_made():
    clean = [0.05, 0.95, 0.5]  # H: h(0.05), h(0.05), ln 2
    adv = [0.5, 0.4, 0.3]      # H: ln 2, h(0.4) = 0.673, h(0.3) = 0.611, each above h(0.05) = 0.199
    # adversarial above clean: ln2 beats 2 and ties 1 (2.5); h(0.4) beats 2; h(0.3) beats 2 -> 6.5 of 9 pairs
    assert metrics.flag_auroc(clean, adv) == pytest.approx(6.5 / 9)


def test_flag_auroc_needs_paired_arrays():
    with pytest.raises(RobustadError, match="clean_probs has 2 entries but adv_probs has 3"):
        metrics.flag_auroc([0.1, 0.2], [0.1, 0.2, 0.3])


def test_image_metrics_returns_every_column():
    labels, scores = random_binary(60, 0, ties=False)
    probs = 1 / (1 + np.exp(-scores))
    row = metrics.image_metrics(labels, scores, probs)
    assert list(row) == ["auroc", "ap", "f1", "f1_max", "gmean", "ece", "brier", "nll", "entropy"]
    assert tuple(row) == metrics.IMAGE_METRICS
    assert row["auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert row["f1"] == pytest.approx(f1_score(labels, probs >= 0.5))
    assert all(isinstance(v, float) and math.isfinite(v) for v in row.values())


def test_the_leaderboard_columns_come_from_the_one_metric_list():
    from robustad.results import schema

    for name in metrics.IMAGE_METRICS + metrics.PIXEL_METRICS:
        assert f"clean_{name}" in schema.COLUMNS and f"adv_{name}" in schema.COLUMNS
    for name in metrics.IMAGE_METRICS:
        assert {f"clean_{name}_ci_low", f"adv_{name}_ci_high"} <= set(schema.COLUMNS)
    assert set(metrics.ATTACK_METRICS) <= set(schema.COLUMNS)
    assert metrics.ATTACK_METRICS == ("flag_auroc", "flag_tpr", "evasion_rate")


# ------------------------------------------------------------------------------------------ evasion

def entropy_by_hand(p: float) -> float:
    return -p * math.log(p) - (1 - p) * math.log(1 - p)


def test_flag_threshold_is_the_higher_95th_percentile_of_calib_entropy():
    # 24 calib probabilities 0.01 ... 0.24: entropy grows with p below 0.5, so the sorted entropies are those of
    # 0.01 ... 0.24. Position 0.95 * 23 = 21.85, rounded up ("higher"): index 22, the entropy of p = 0.23.
    calib = [k / 100 for k in range(1, 25)]
    threshold = metrics.flag_threshold(calib)
    assert threshold == pytest.approx(entropy_by_hand(0.23), abs=1e-15)
    # strict rule: only p = 0.24 lies above, 1 of 24 clean calib images (numpy's linear rule would give 2)
    assert metrics.flag_tpr(calib, threshold) == 1 / 24
    assert metrics.flag_threshold(calib, quantile=0.5) == pytest.approx(entropy_by_hand(0.13), abs=1e-15)


def test_tied_calib_entropies_flag_only_what_lies_strictly_above():
    # a degenerate calibrator: every calib probability is 0 or 1, entropy 0, so the threshold is 0
    threshold = metrics.flag_threshold([0.0, 1.0, 1.0, 0.0, 1.0])
    assert threshold == 0.0
    # with ">" an adversarial p of 0 or 1 is not flagged; any p strictly inside (0, 1) is
    assert metrics.flag_tpr([0.0, 1.0, 0.5, 1e-9], threshold) == 0.5


def test_flag_tpr_and_evasion_rate_hand_counted():
    labels = [0, 0, 1, 1, 1, 0]
    adv_probs = [0.9, 0.55, 0.2, 0.5, 0.99, 0.1]
    threshold = entropy_by_hand(0.3)  # flagged: H(p) > H(0.3), i.e. 0.3 < p < 0.7 -> images 1 and 3
    assert metrics.flag_tpr(adv_probs, threshold) == pytest.approx(2 / 6)
    # misclassified at p >= 0.5: image 0 (normal, 0.9), image 1 (normal, 0.55), image 2 (anomalous, 0.2);
    # image 3 (anomalous, p = 0.5) is correct. Image 1 is flagged, so images 0 and 2 evade: 2 of 6.
    assert metrics.evasion_rate(labels, adv_probs, threshold) == pytest.approx(2 / 6)
    # with a threshold above ln 2 nothing is flagged and every misclassified image evades
    assert metrics.evasion_rate(labels, adv_probs, 0.7) == pytest.approx(3 / 6)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: metrics.flag_threshold([0.1, 0.2], quantile=1.5), r"quantile must be a number in \[0, 1\], got 1.5"),
    (lambda: metrics.flag_tpr([0.1, 0.2], float("nan")), "flag_tpr: threshold must be a finite number"),
    (lambda: metrics.evasion_rate([0, 1], [0.1, 0.2], None), "evasion_rate: threshold must be a finite number"),
    (lambda: metrics.evasion_rate([0, 1, 1], [0.1, 0.2], 0.1), "labels has 3 entries but probs has 2"),
    (lambda: metrics.flag_threshold([0.1, 1.2]), r"calib_probs must lie in \[0, 1\]"),
])
def test_bad_evasion_input_is_a_one_line_error(call, message):
    with pytest.raises(RobustadError, match=message) as error:
        call()
    assert "\n" not in str(error.value)


def test_metrics_module_loads_without_scipy_or_sklearn():
    code = "import sys, robustad.metrics, robustad.intervals; print(sorted({'scipy', 'sklearn'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


# ------------------------------------------------------------------------------------------ localisation

def test_pixel_auroc_matches_sklearn_on_flattened_pixels():
    rng = np.random.default_rng(0)
    masks = [rng.random((12, 9)) < 0.2 for _ in range(4)]
    maps = [np.round(rng.random((12, 9)) + 0.5 * m, 2).astype(np.float32) for m in masks]
    expected = roc_auc_score(np.concatenate([m.ravel() for m in masks]), np.concatenate([a.ravel() for a in maps]))
    assert metrics.pixel_auroc(maps, masks) == pytest.approx(expected, abs=1e-12)


def two_region_example() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Image 1 (2x6): region A = 2 pixels (0.9, 0.4), region B = 1 pixel (0.8), 9 normal pixels; image 2: 1 normal."""
    mask = np.array([[1, 1, 0, 0, 0, 0],
                     [0, 0, 0, 0, 0, 1]], dtype=bool)
    scores = np.array([[0.9, 0.4, 0.95, 0.8, 0.3, 0.2],
                       [0.1, 0.05, 0.04, 0.03, 0.02, 0.8]])
    return [scores, np.array([[0.01]])], [mask, np.zeros((1, 1), dtype=bool)]


def test_aupro_two_regions_hand_computed():
    maps, masks = two_region_example()
    # 10 normal pixels, regions A (size 2) and B (size 1). Descending thresholds, (FPR, PRO):
    #   0.95: a normal           -> (0.1, 0)
    #   0.9 : half of A          -> (0.1, (1/2 + 0)/2 = 0.25)
    #   0.8 : B and a normal tie -> (0.2, (1/2 + 1)/2 = 0.75)
    #   0.4 : all of A           -> (0.2, 1.0)
    #   0.3 : a normal           -> (0.3, 1.0)
    # area to FPR 0.3: (0.25 + 0.75)/2 * 0.1 + 1.0 * 0.1 = 0.15; normalised: 0.15 / 0.3 = 0.5
    assert metrics.aupro(maps, masks) == pytest.approx(0.5)
    # to FPR 0.15: PRO interpolated at 0.15 is 0.5, area (0.25 + 0.5)/2 * 0.05 = 0.01875; / 0.15 = 0.125
    assert metrics.aupro(maps, masks, fpr_limit=0.15) == pytest.approx(0.125)


def test_aupro_regions_are_eight_connected():
    mask = np.array([[1, 0, 0],
                     [0, 1, 1]], dtype=bool)
    scores = np.array([[0.9, 0.5, 0.4],
                       [0.3, 0.1, 0.1]])
    # one diagonal-connected region of 3 pixels: at 0.9, PRO = 1/3 with FPR 0; it stays 1/3 until FPR 1/3 > 0.3.
    # (4-connected, the top-left pixel would be its own region and PRO would be 1/2.)
    assert metrics.aupro([scores], [mask]) == pytest.approx(1 / 3)


def brute_force_aupro(maps, masks, limit):
    """Every distinct threshold evaluated on the full pixel arrays, regions by scikit-image."""
    values = np.concatenate([m.ravel() for m in maps])
    regions, offset = [], 0
    for mask in masks:
        labeled = connected_components(mask, connectivity=2)
        regions.append(np.where(labeled > 0, labeled + offset, 0).ravel())
        offset = max(offset, regions[-1].max())
    region = np.concatenate(regions)
    fprs, pros = [0.0], [0.0]
    for threshold in np.unique(values)[::-1]:
        above = values >= threshold
        fprs.append(above[region == 0].mean())
        pros.append(np.mean([above[region == r].mean() for r in range(1, offset + 1)]))
    fprs, pros = np.array(fprs), np.array(pros)
    keep = fprs <= limit
    xs, ys = list(fprs[keep]), list(pros[keep])
    beyond = np.flatnonzero(fprs > limit)
    if beyond.size and xs[-1] < limit:
        j = beyond[0]
        ys.append(np.interp(limit, [fprs[j - 1], fprs[j]], [pros[j - 1], pros[j]]))
        xs.append(limit)
    return sum((xs[i + 1] - xs[i]) * (ys[i + 1] + ys[i]) / 2 for i in range(len(xs) - 1)) / limit


@pytest.mark.parametrize(("seed", "limit"), [(0, 0.3), (1, 0.3), (2, 0.05), (3, 1.0)])
def test_aupro_matches_brute_force(seed, limit):
    rng = np.random.default_rng(seed)
    masks = [np.zeros((16, 16), dtype=bool) for _ in range(3)]
    masks[0][2:5, 2:6] = True
    masks[0][10:12, 9:15] = True
    masks[1][6:9, 6:9] = True
    maps = [np.round(rng.random((16, 16)) + 0.6 * m, 2) for m in masks]  # image 3 is all normal
    assert metrics.aupro(maps, masks, limit) == pytest.approx(brute_force_aupro(maps, masks, limit), abs=1e-12)


# ------------------------------------------------------------------------------------------ degenerate input

@pytest.mark.parametrize("metric", [metrics.auroc, metrics.average_precision, metrics.f1_max])
def test_ranking_metrics_of_one_class_are_none(metric):
    with pytest.warns(UndefinedMetricWarning, match="only class 1"):
        assert metric([1, 1, 1], [0.1, 0.2, 0.3]) is None


def test_gmean_of_one_class_is_none():
    with pytest.warns(UndefinedMetricWarning, match="only class 0"):
        assert metrics.gmean([0, 0], [0.1, 0.9]) is None


def test_f1_without_any_positive_is_none():
    with pytest.warns(UndefinedMetricWarning, match="no anomalous label"):
        assert metrics.f1([0, 0], [0.1, 0.2]) is None
    assert metrics.f1([0, 0], [0.1, 0.7]) == 0.0  # a false alarm makes F1 defined, and zero


def test_pixel_metrics_without_defect_pixels_are_none():
    maps, masks = [np.ones((3, 3))], [np.zeros((3, 3), dtype=bool)]
    with pytest.warns(UndefinedMetricWarning, match="0 defect and 9 normal"):
        assert metrics.pixel_auroc(maps, masks) is None
    with pytest.warns(UndefinedMetricWarning, match="0 defect and 9 normal"):
        assert metrics.aupro(maps, masks) is None


def test_image_metrics_of_one_class_has_no_nan():
    with pytest.warns(UndefinedMetricWarning):
        row = metrics.image_metrics([0, 0, 0], [0.1, 0.2, 0.3], [0.1, 0.2, 0.7])
    assert row["auroc"] is None and row["ap"] is None and row["f1_max"] is None and row["gmean"] is None
    assert row["f1"] == 0.0 and row["brier"] == pytest.approx((0.01 + 0.04 + 0.49) / 3)


def test_f1_optimal_threshold_of_one_class_is_an_error():
    with pytest.raises(RobustadError, match="only class 0"):
        metrics.f1_optimal_threshold([0, 0], [0.1, 0.2])


@pytest.mark.parametrize(("call", "message"), [
    (lambda: metrics.auroc([0, 1, 1], [0.1, 0.2]), "labels has 3 entries but scores has 2"),
    (lambda: metrics.auroc([0, 2], [0.1, 0.2]), "labels must be 0 or 1, got 2"),
    (lambda: metrics.auroc([0, 1], [0.1, np.nan]), "scores must be finite"),
    (lambda: metrics.ece([0, 1], [0.1, 1.2]), r"probs must lie in \[0, 1\], got 1.2"),
    (lambda: metrics.brier([], []), "non-empty 1-D"),
    (lambda: metrics.ece([0, 1], [0.1, 0.2], n_bins=0), "n_bins must be a positive integer"),
    (lambda: metrics.pixel_auroc([np.zeros((2, 2))], [np.zeros((2, 3), bool)]), r"shape \(2, 2\) but its mask"),
    (lambda: metrics.aupro([np.zeros((2, 2))], [np.zeros((2, 2), bool)] * 2), "1 anomaly maps and 2 masks"),
    (lambda: metrics.aupro([np.zeros((2, 2), bool)], [np.full((2, 2), 0.3)]), "mask 0 must be boolean"),
])
def test_bad_input_is_a_one_line_error(call, message):
    with pytest.raises(RobustadError, match=message) as error:
        call()
    assert "\n" not in str(error.value)


def test_localisation_equals_the_two_pixel_metrics_alone():
    rng = np.random.default_rng(7)
    maps = [rng.random((20, 30)) for _ in range(4)]
    masks = [rng.random((20, 30)) > 0.8 for _ in range(3)] + [np.zeros((20, 30), dtype=bool)]
    both = metrics.localisation(maps, masks)
    assert both == {"pixel_auroc": metrics.pixel_auroc(maps, masks), "aupro": metrics.aupro(maps, masks)}
    assert both["pixel_auroc"] == pytest.approx(roc_auc_score(np.concatenate([m.ravel() for m in masks]),
                                                              np.concatenate([m.ravel() for m in maps])))
