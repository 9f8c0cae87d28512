"""The metrics of docs/protocol.md section 6: small pure functions over numpy arrays.

Conventions shared by every function here:
- labels are 0 (normal) / 1 (anomalous); scores are raw detector scores (higher = more anomalous);
  probs are calibrated probabilities of "anomalous" in [0, 1].
- A metric that is undefined on its input (one class only, nothing predicted anomalous, ...) returns ``None``
  and warns with ``UndefinedMetricWarning``: the leaderboard writes an empty cell, never a NaN.
- Malformed input (wrong shape, mismatched lengths, NaN, labels other than 0/1) is a one-line ``RobustadError``.
- Pixel metrics take ``(maps, masks)``: one 2-D anomaly map and one boolean mask (True = defect) per image.
- scipy and scikit-learn are imported inside the functions that use them: plugins import this module while
  ``robustad plugins`` lists them, and that must stay fast.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from robustad.errors import RobustadError

IMAGE_METRICS = ("auroc", "ap", "f1", "f1_max", "gmean", "ece", "brier", "nll", "entropy")
"""Metrics of one set of eval images, each a ``clean_*`` and an ``adv_*`` column (``image_metrics`` keys)."""
RANKING_METRICS = ("auroc", "ap", "f1_max")
"""The image metrics that read the raw scores: a calibrator cannot change them (``image_metrics``)."""
ATTACK_METRICS = ("flag_auroc", "flag_tpr", "evasion_rate")
"""Metrics that compare the adversarial eval images with their clean versions: one column each."""
DECISION_RATES = ("fpr_at_alpha", "tpr_at_alpha")
"""Rates of a calibrator's own decision at its ``alpha`` (``conformal``), each a ``clean_*`` and an ``adv_*`` column."""

DECISION_THRESHOLD = 0.5
ECE_BINS = 15
NLL_CLIP = 1e-12
AUPRO_FPR_LIMIT = 0.3
F1_TIE_TOLERANCE = 1e-12
FLAG_QUANTILE = 0.95
FLAG_PERCENTILE_METHOD = "higher"


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined on this input and is reported as ``None``."""


# ---------------------------------------------------------------------------------------------- validation

def check_labels(labels: object, context: str) -> np.ndarray:
    """``labels`` as a non-empty 1-D int64 array of 0/1, or a one-line RobustadError naming ``context``."""
    array = np.asarray(labels)
    if array.ndim != 1 or array.size == 0:
        raise RobustadError(f"{context}: labels must be a non-empty 1-D array, got shape {array.shape}")
    valid = np.isin(array, (0, 1))
    if not valid.all():
        raise RobustadError(f"{context}: labels must be 0 or 1, got {array[~valid][0].item()!r}")
    return array.astype(np.int64)


def require_both_classes(labels: np.ndarray, context: str, why: str) -> None:
    """A one-line RobustadError when ``labels`` (checked 0/1) hold a single class: fitting ``context`` needs both."""
    if labels.min() == labels.max():
        raise RobustadError(f"{context}: labels contain only class {int(labels[0])} ({labels.size} samples); {why}")


def check_values(values: object, context: str, *, name: str = "scores", length: int | None = None,
                 probabilities: bool = False) -> np.ndarray:
    """``values`` as a non-empty finite 1-D float64 array (of ``length``, within [0,1] for probabilities)."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise RobustadError(f"{context}: {name} must be numbers, got {type(values).__name__}") from None
    if array.ndim != 1 or array.size == 0:
        raise RobustadError(f"{context}: {name} must be a non-empty 1-D array, got shape {array.shape}")
    if length is not None and array.size != length:
        raise RobustadError(f"{context}: labels has {length} entries but {name} has {array.size}")
    finite = np.isfinite(array)
    if not finite.all():
        raise RobustadError(f"{context}: {name} must be finite, got {array[~finite][0]} at index "
                            f"{int(np.flatnonzero(~finite)[0])}")
    if probabilities:
        outside = (array < 0.0) | (array > 1.0)
        if outside.any():
            raise RobustadError(f"{context}: {name} must lie in [0, 1], got {array[outside][0]} at index "
                                f"{int(np.flatnonzero(outside)[0])}")
    return array


def _labels_and(metric: str, labels: object, values: object, *, probabilities: bool) -> tuple[np.ndarray, np.ndarray]:
    y = check_labels(labels, metric)
    name = "probs" if probabilities else "scores"
    return y, check_values(values, metric, name=name, length=y.size, probabilities=probabilities)


def _undefined(metric: str, reason: str) -> None:
    warnings.warn(f"{metric} is undefined: {reason}; reported as None", UndefinedMetricWarning, stacklevel=3)


def _has_both_classes(metric: str, y: np.ndarray) -> bool:
    if y.min() == y.max():
        _undefined(metric, f"labels contain only class {int(y[0])} ({y.size} samples)")
        return False
    return True


# ---------------------------------------------------------------------------------------------- ranking metrics

def auroc(labels: object, scores: object) -> float | None:
    """Image AUROC (sklearn ``roc_auc_score``); constant scores give 0.5; None with one class."""
    from sklearn.metrics import roc_auc_score

    y, s = _labels_and("auroc", labels, scores, probabilities=False)
    return float(roc_auc_score(y, s)) if _has_both_classes("auroc", y) else None


def average_precision(labels: object, scores: object) -> float | None:
    """Step-wise average precision, sum_n (R_n - R_{n-1}) P_n (sklearn ``average_precision_score``)."""
    from sklearn.metrics import average_precision_score

    y, s = _labels_and("ap", labels, scores, probabilities=False)
    return float(average_precision_score(y, s)) if _has_both_classes("ap", y) else None


def _f1_over_thresholds(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F1 of the rule ``score >= t`` for every distinct score t, thresholds ascending (sklearn's PR curve)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, s)
    precision, recall = precision[:-1], recall[:-1]  # the last point (P=1, R=0) has no threshold
    total = precision + recall
    f1_values = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    return f1_values, thresholds


def f1_max(labels: object, scores: object) -> float | None:
    """Best F1 over all thresholds ``score >= t`` (threshold-free, as AnomalyDINO reports); None with one class."""
    y, s = _labels_and("f1_max", labels, scores, probabilities=False)
    if not _has_both_classes("f1_max", y):
        return None
    return float(_f1_over_thresholds(y, s)[0].max())


def f1_optimal_threshold(labels: object, scores: object) -> float:
    """A threshold tau whose rule ``score >= tau`` maximises F1 on these samples, centred in its gap.

    Candidates are the distinct scores (sklearn ``precision_recall_curve``); F1 values within 1e-12 of the best
    count as ties and the lowest tied score t wins (the more sensitive rule). Every tau in (t', t], t' the next
    lower distinct score, makes the same decisions on these samples; tau is the midpoint (t' + t) / 2, so that
    unseen scores just below t (on perfectly separated calib data: just below the lowest anomalous score) are not
    confidently normal. With no lower score, tau = t. Needs both classes: a fitted threshold on one class is
    meaningless, so that is a RobustadError, not a warning.
    """
    y, s = _labels_and("f1_optimal_threshold", labels, scores, probabilities=False)
    require_both_classes(y, "f1_optimal_threshold", "a threshold needs both classes")
    f1_values, thresholds = _f1_over_thresholds(y, s)
    best = float(thresholds[np.flatnonzero(f1_values >= f1_values.max() - F1_TIE_TOLERANCE)[0]])
    lower = s[s < best]
    return (float(lower.max()) + best) / 2 if lower.size else best


# ---------------------------------------------------------------------------------------------- decision metrics

def _confusion(y: np.ndarray, p: np.ndarray) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) of the decision rule p >= 0.5."""
    predicted = p >= DECISION_THRESHOLD
    positive = y == 1
    tp = int(np.sum(predicted & positive))
    fp = int(np.sum(predicted & ~positive))
    fn = int(np.sum(~predicted & positive))
    return tp, fp, fn, y.size - tp - fp - fn


def f1(labels: object, probs: object) -> float | None:
    """F1 = 2TP / (2TP + FP + FN) at p >= 0.5; None when there is no positive label and no positive prediction."""
    y, p = _labels_and("f1", labels, probs, probabilities=True)
    tp, fp, fn, _ = _confusion(y, p)
    if 2 * tp + fp + fn == 0:
        _undefined("f1", "no anomalous label and no anomalous prediction")
        return None
    return 2 * tp / (2 * tp + fp + fn)


def gmean(labels: object, probs: object) -> float | None:
    """sqrt(TPR * TNR) at p >= 0.5; None with one class."""
    y, p = _labels_and("gmean", labels, probs, probabilities=True)
    if not _has_both_classes("gmean", y):
        return None
    tp, fp, fn, tn = _confusion(y, p)
    return math.sqrt(tp / (tp + fn) * tn / (tn + fp))


# ---------------------------------------------------------------------------------------------- calibration

def bin_index(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bins over [0,1], each [lower, upper) except the last, which also holds p = 1.0.

    Same edges as torchmetrics' ``BinaryCalibrationError`` (``bucketize(right=True)``) for every p < 1; torchmetrics
    puts p = 1.0 exactly in an extra 16th bin of its own, here it joins the last bin [14/15, 1].
    """
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.minimum(np.searchsorted(edges, p, side="right") - 1, n_bins - 1)


def _check_bins(n_bins: int, context: str) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise RobustadError(f"{context}: n_bins must be a positive integer, got {n_bins!r}")


def ece(labels: object, probs: object, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error of the positive class: sum_b (n_b / n) |mean(label)_b - mean(p)_b|.

    Confidence = p, outcome = label, ``n_bins`` equal-width bins (see ``bin_index``); empty bins add nothing.
    """
    _check_bins(n_bins, "ece")
    y, p = _labels_and("ece", labels, probs, probabilities=True)
    index = bin_index(p, n_bins)
    gap = np.bincount(index, weights=y, minlength=n_bins) - np.bincount(index, weights=p, minlength=n_bins)
    return float(np.abs(gap).sum() / y.size)


def reliability_diagram(labels: object, probs: object, n_bins: int = ECE_BINS) -> list[dict]:
    """Per-bin ``lower``, ``upper``, ``count``, ``mean_confidence``, ``observed_frequency`` (None when empty)."""
    _check_bins(n_bins, "reliability_diagram")
    y, p = _labels_and("reliability_diagram", labels, probs, probabilities=True)
    index = bin_index(p, n_bins)
    counts = np.bincount(index, minlength=n_bins)
    confidence = np.bincount(index, weights=p, minlength=n_bins)
    frequency = np.bincount(index, weights=y, minlength=n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return [{"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": int(counts[b]),
             "mean_confidence": float(confidence[b] / counts[b]) if counts[b] else None,
             "observed_frequency": float(frequency[b] / counts[b]) if counts[b] else None}
            for b in range(n_bins)]


def brier(labels: object, probs: object) -> float:
    """Brier score: mean of (p - label)^2."""
    y, p = _labels_and("brier", labels, probs, probabilities=True)
    return float(np.mean((p - y) ** 2))


def nll(labels: object, probs: object) -> float:
    """Mean negative log-likelihood in nats, p clipped to [1e-12, 1 - 1e-12].

    The clip keeps a confidently wrong p of exactly 0 or 1 (the ``none`` calibrator produces them) finite:
    it costs ln(1e12) ~ 27.6 nats instead of infinity.
    """
    y, p = _labels_and("nll", labels, probs, probabilities=True)
    p = np.clip(p, NLL_CLIP, 1.0 - NLL_CLIP)
    return float(-np.mean(np.where(y == 1, np.log(p), np.log1p(-p))))


def binary_entropy(probs: object) -> np.ndarray:
    """Per-sample predictive entropy H(p) = -p ln p - (1-p) ln(1-p) in nats, with 0 ln 0 = 0."""
    from scipy import special

    p = check_values(probs, "binary_entropy", name="probs", probabilities=True)
    return special.entr(p) + special.entr(1.0 - p)


def entropy(probs: object) -> float:
    """Mean binary predictive entropy in nats (ln 2 at p = 0.5, 0 at p in {0, 1})."""
    return float(binary_entropy(probs).mean())


def flag_auroc(clean_probs: object, adv_probs: object) -> float:
    """AUROC of H(p) flagging adversarial eval images (positive) against their clean versions (negative).

    Both arrays are the same eval images in the same order; 0.5 means the entropy flag is useless.
    """

    clean = check_values(clean_probs, "flag_auroc", name="clean_probs", probabilities=True)
    adv = check_values(adv_probs, "flag_auroc", name="adv_probs", probabilities=True)
    if adv.size != clean.size:
        raise RobustadError(f"flag_auroc: clean_probs has {clean.size} entries but adv_probs has {adv.size}")
    return statistic_auroc(binary_entropy(clean), binary_entropy(adv))


def statistic_auroc(clean_values: object, adv_values: object) -> float:
    """AUROC of any flag statistic at telling adversarial eval images (positive) from their clean versions."""
    from sklearn.metrics import roc_auc_score

    clean = check_values(clean_values, "flag_auroc", name="clean values")
    adv = check_values(adv_values, "flag_auroc", name="adv values")
    if adv.size != clean.size:
        raise RobustadError(f"flag_auroc: clean values has {clean.size} entries but adv values has {adv.size}")
    is_adversarial = np.concatenate([np.zeros(clean.size), np.ones(adv.size)])
    return float(roc_auc_score(is_adversarial, np.concatenate([clean, adv])))


# ---------------------------------------------------------------------------------------------- evasion

def flag_threshold(calib_probs: object, quantile: float = FLAG_QUANTILE) -> float:
    """The entropy above which an image is flagged: the ``quantile`` of H(p) over the clean calib images.

    numpy's ``method="higher"``: the threshold is an observed calib entropy, and with the strict rule
    H > threshold (``flagged``) at most a share 1 - quantile of the clean calib images is flagged, however many
    entropies tie (isotonic and degenerate temperature fits give many equal probabilities).
    On 24 calib images (bottle) at 0.95 it flags 1 (4 %); numpy's default linear interpolation would flag 2 (8 %).
    """
    if isinstance(quantile, bool) or not isinstance(quantile, (int, float)) or not 0.0 <= quantile <= 1.0:
        raise RobustadError(f"flag_threshold: quantile must be a number in [0, 1], got {quantile!r}")
    entropies = binary_entropy(check_values(calib_probs, "flag_threshold", name="calib_probs", probabilities=True))
    return _higher_quantile(entropies, quantile)


def statistic_threshold(calib_values: object, fpr: float) -> float:
    """The value above which any flag statistic flags an image: its ``1 - fpr`` quantile (numpy ``higher``) over
    the clean calib images, so that the strict rule value > threshold flags at most a share ``fpr`` of them."""
    if isinstance(fpr, bool) or not isinstance(fpr, (int, float)) or not 0.0 < fpr < 1.0:
        raise RobustadError(f"flag threshold: fpr must be a number in (0, 1), got {fpr!r}")
    return _higher_quantile(check_values(calib_values, "flag threshold", name="calib values"), 1.0 - fpr)


def _higher_quantile(values: np.ndarray, quantile: float) -> float:
    return float(np.quantile(values, quantile, method=FLAG_PERCENTILE_METHOD))


def flagged(probs: object, threshold: float, context: str = "flagged") -> np.ndarray:
    """Per image: True when its predictive entropy H(p) is strictly above ``threshold`` (see ``flag_threshold``)."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) \
            or not math.isfinite(threshold):
        raise RobustadError(f"{context}: threshold must be a finite number (an entropy in nats), got {threshold!r}")
    p = check_values(probs, context, name="probs", probabilities=True)
    return binary_entropy(p) > threshold


def flag_tpr(adv_probs: object, threshold: float) -> float:
    """Share of adversarial eval images the entropy flag catches (H(p) > threshold)."""
    return float(flagged(adv_probs, threshold, "flag_tpr").mean())


def misclassified(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per image: True when the decision p >= 0.5 disagrees with the 0/1 label (inputs already checked)."""
    return (probs >= DECISION_THRESHOLD) != (labels == 1)


def evasion_rate(labels: object, adv_probs: object, threshold: float) -> float:
    """Share of eval images that the attack gets misclassified (p >= 0.5 on the wrong side) without being flagged.

    What a defender who trusts both the decision and the entropy flag loses to the attack.
    """
    y, p = _labels_and("evasion_rate", labels, adv_probs, probabilities=True)
    return evaded(y, p, flagged(p, threshold, "evasion_rate"))


def evaded(labels: np.ndarray, adv_probs: np.ndarray, flags: np.ndarray) -> float:
    """Share of eval images misclassified after the attack and not flagged by ``flags`` (any flag's per-image
    decisions; inputs already checked)."""
    return float(np.mean(misclassified(labels, adv_probs) & ~flags))


def decision_rates(labels: object, anomalous: object) -> dict[str, float | None]:
    """``fpr_at_alpha``: share of normal images decided anomalous; ``tpr_at_alpha``: share of anomalous ones
    (a calibrator's own decision, e.g. conformal p <= alpha); None for a class the labels do not hold."""
    y = check_labels(labels, "decision_rates")
    decided = np.asarray(anomalous)
    if decided.shape != y.shape or decided.dtype != bool:
        raise RobustadError(f"decision_rates: expected {y.size} booleans, got {decided.dtype} of shape "
                            f"{decided.shape}")
    return {"fpr_at_alpha": float(decided[y == 0].mean()) if (y == 0).any() else None,
            "tpr_at_alpha": float(decided[y == 1].mean()) if (y == 1).any() else None}


def image_metrics(labels: object, scores: object, probs: object) -> dict[str, float | None]:
    """auroc, ap, f1, f1_max, gmean, ece, brier, nll, entropy of one set of eval images.

    The ranking metrics (auroc, ap, f1_max) read the raw scores, so a calibrator cannot change them (isotonic
    steps would create ties); the decision and calibration metrics read the calibrated probabilities.
    """
    y = check_labels(labels, "image_metrics")
    check_values(scores, "image_metrics", name="scores", length=y.size)
    check_values(probs, "image_metrics", name="probs", length=y.size, probabilities=True)
    values = {
        "auroc": auroc(y, scores), "ap": average_precision(y, scores), "f1": f1(y, probs),
        "f1_max": f1_max(y, scores), "gmean": gmean(y, probs), "ece": ece(y, probs), "brier": brier(y, probs),
        "nll": nll(y, probs), "entropy": entropy(probs),
    }
    return {name: values[name] for name in IMAGE_METRICS}


# ---------------------------------------------------------------------------------------------- localisation

PIXEL_METRICS = ("pixel_auroc", "aupro")
"""Localisation metrics of a set of eval images with defect masks, each a ``clean_*`` and an ``adv_*`` column."""
UNIT = (0.0, 1.0)
METRIC_RANGES = {**dict.fromkeys((*IMAGE_METRICS, *ATTACK_METRICS, *DECISION_RATES, *PIXEL_METRICS), UNIT),
                 "nll": (0.0, math.inf), "entropy": (0.0, math.log(2))}
"""The values each metric can take (closed intervals): a leaderboard value outside is impossible, not a result."""
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _checked_pairs(metric: str, maps: Sequence[np.ndarray],
                   masks: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(map, bool mask) per image after checking counts, shapes, mask values and finiteness."""
    if len(maps) != len(masks) or len(maps) == 0:
        raise RobustadError(f"{metric}: got {len(maps)} anomaly maps and {len(masks)} masks; "
                            "expected the same non-zero number")
    pairs = []
    for index, (anomaly_map, mask) in enumerate(zip(maps, masks)):
        anomaly_map, mask = np.asarray(anomaly_map), np.asarray(mask)
        if anomaly_map.ndim != 2 or anomaly_map.shape != mask.shape:
            raise RobustadError(f"{metric}: anomaly map {index} has shape {anomaly_map.shape} but its mask has "
                                f"shape {mask.shape}; expected equal 2-D shapes")
        if mask.dtype != bool and not np.isin(mask, (0, 1)).all():
            raise RobustadError(f"{metric}: mask {index} must be boolean or 0/1 (arguments are maps, masks)")
        if not np.issubdtype(anomaly_map.dtype, np.number) or not np.isfinite(anomaly_map).all():
            raise RobustadError(f"{metric}: anomaly map {index} must hold finite numbers")
        pairs.append((anomaly_map, mask.astype(bool)))
    return pairs


def _sorted_normal_values(pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Values of every normal pixel of every image, ascending."""
    return np.sort(np.concatenate([anomaly_map[~mask] for anomaly_map, mask in pairs]))


def _has_both_pixel_classes(metric: str, n_defect: int, n_normal: int) -> bool:
    if n_defect == 0 or n_normal == 0:
        _undefined(metric, f"the masks hold {n_defect} defect and {n_normal} normal pixels; both are needed")
        return False
    return True


def pixel_auroc(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> float | None:
    """AUROC over all pixels of all images pooled (= sklearn ``roc_auc_score`` on the flattened pixels).

    Computed as the Mann-Whitney statistic from two sorted arrays (ties count one half): sklearn needs ~20 s
    for 60 maps of 900x900, this about 1 s.
    """
    pairs = _checked_pairs("pixel_auroc", maps, masks)
    return _pixel_auroc(pairs, _sorted_normal_values(pairs))


def aupro(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray], fpr_limit: float = AUPRO_FPR_LIMIT) -> float | None:
    """Area under the per-region-overlap curve up to ``fpr_limit`` false-positive rate, divided by ``fpr_limit``.

    As in the MVTec AD evaluation code: defect regions are the 8-connected components of each mask; for every
    distinct map value t (pixels >= t are anomalous) PRO(t) is the mean over all regions of all images of the
    share of the region's pixels >= t, and FPR(t) the share of all normal pixels >= t. The curve starts at
    (0, 0), is integrated with the trapezoid rule, and is linearly interpolated at ``fpr_limit``.
    """
    if not 0.0 < fpr_limit <= 1.0:
        raise RobustadError(f"aupro: fpr_limit must lie in (0, 1], got {fpr_limit}")
    pairs = _checked_pairs("aupro", maps, masks)
    return _aupro(pairs, _sorted_normal_values(pairs), fpr_limit)


def localisation(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> dict[str, float | None]:
    """``pixel_auroc`` and ``aupro`` of the same maps, checking them and sorting their normal pixels once."""
    pairs = _checked_pairs("localisation", maps, masks)
    normal = _sorted_normal_values(pairs)
    return {"pixel_auroc": _pixel_auroc(pairs, normal), "aupro": _aupro(pairs, normal, AUPRO_FPR_LIMIT)}


def _pixel_auroc(pairs: list[tuple[np.ndarray, np.ndarray]], normal: np.ndarray) -> float | None:
    defect = np.sort(np.concatenate([anomaly_map[mask] for anomaly_map, mask in pairs]))
    if not _has_both_pixel_classes("pixel_auroc", defect.size, normal.size):
        return None
    below = np.searchsorted(normal, defect, side="left").sum()
    at_or_below = np.searchsorted(normal, defect, side="right").sum()
    return float((below + at_or_below) / (2.0 * defect.size * normal.size))


def _aupro(pairs: list[tuple[np.ndarray, np.ndarray]], normal: np.ndarray, fpr_limit: float) -> float | None:
    from scipy import ndimage

    values, regions, n_regions = [], [], 0
    for anomaly_map, mask in pairs:
        labeled, count = ndimage.label(mask, structure=EIGHT_CONNECTED)
        values.append(anomaly_map[mask])
        regions.append(labeled[mask] + n_regions)
        n_regions += count
    defect, region = np.concatenate(values), np.concatenate(regions)
    if not _has_both_pixel_classes("aupro", defect.size, normal.size):
        return None
    fpr, pro = _pro_curve(normal, defect, region, n_regions)
    return float(_area_up_to(fpr, pro, fpr_limit) / fpr_limit)


def _pro_curve(normal: np.ndarray, defect: np.ndarray, region: np.ndarray,
               n_regions: int) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, PRO) points from (0, 0) to (1, 1), sorting only the defect pixels.

    Between two consecutive distinct defect values only FPR moves, so the curve there is flat and two points per
    defect value suffice: (FPR of values > t, PRO above t) and (FPR of values >= t, PRO(t)); the area is the
    same as over every distinct pixel value.
    """
    order = np.argsort(defect)[::-1]
    descending = defect[order]
    overlap = np.cumsum(1.0 / np.bincount(region)[region][order]) / n_regions
    last_of_ties = np.append(descending[1:] != descending[:-1], True)
    thresholds, pro_at = descending[last_of_ties], overlap[last_of_ties]
    pro_above = np.concatenate([[0.0], pro_at[:-1]])
    fpr_above = (normal.size - np.searchsorted(normal, thresholds, side="right")) / normal.size
    fpr_at = (normal.size - np.searchsorted(normal, thresholds, side="left")) / normal.size
    fpr = np.concatenate([[0.0], np.column_stack([fpr_above, fpr_at]).ravel(), [1.0]])
    pro = np.concatenate([[0.0], np.column_stack([pro_above, pro_at]).ravel(), [1.0]])
    return fpr, pro


def _area_up_to(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Trapezoid area under y(x) for x in [0, limit], x non-decreasing from 0 to 1."""
    from scipy.integrate import trapezoid

    inside = int(np.searchsorted(x, limit, side="right"))
    xs, ys = x[:inside], y[:inside]
    if inside < x.size and xs[-1] < limit:
        weight = (limit - x[inside - 1]) / (x[inside] - x[inside - 1])
        xs = np.append(xs, limit)
        ys = np.append(ys, y[inside - 1] + weight * (y[inside] - y[inside - 1]))
    return float(trapezoid(ys, xs))
