"""The image and attack metrics of ``robustad.metrics`` on many bootstrap resamples at once.

A resample of n eval images is given by its counts: how often each image was drawn (one row of an (R, n) matrix,
summing to n). Every metric is a function of count-weighted sums, per image or per distinct score, so R resamples
cost a few matrix products and cumulative sums instead of R sklearn calls (``benchmarks/bench_intervals.py``).
Each function returns an (R,) float64 array holding NaN where the metric is undefined on that resample, in exactly
the cases where ``robustad.metrics`` returns None; ``robustad.intervals`` turns those into skipped resamples, so
NaN never reaches a leaderboard. Inputs are checked by the caller.
"""

from __future__ import annotations

import numpy as np

from robustad import metrics


def counts_of(indices: np.ndarray, n: int) -> np.ndarray:
    """(R, n) float64: how often each of the n images appears in each row of the (R, n) drawn ``indices``."""
    resamples = indices.shape[0]
    flat = (indices + n * np.arange(resamples)[:, None]).ravel()
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(np.float64)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN (undefined) where the denominator is 0."""
    return np.divide(numerator, denominator, out=np.full(numerator.shape, np.nan), where=denominator > 0)


def _class_counts(counts: np.ndarray, labels: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative): (R, G) draws of anomalous / normal images at each of the G distinct values, ascending.

    Tied values share a column, which is what makes the ranking metrics below handle ties as sklearn does.
    """
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    drawn = counts[:, order]
    positive = np.add.reduceat(drawn * labels[order], starts, axis=1)
    return positive, np.add.reduceat(drawn, starts, axis=1) - positive


def _auroc(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUROC from per-value class counts: P(anomalous value > normal value) + P(tie) / 2."""
    pairs_won = (positive * (np.cumsum(negative, axis=1) - 0.5 * negative)).sum(axis=1)
    return _ratio(pairs_won, positive.sum(axis=1) * negative.sum(axis=1))


def ranking_metrics(counts: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> dict[str, np.ndarray]:
    """auroc, ap and f1_max per resample from one sort of the scores.

    For the rule score >= t at each distinct score t: TP and FP are the draws at or above t. AP (step-wise) sums
    (recall gained at t) * precision(t); F1-max is the best 2TP / (TP + FP + P). A value absent from a resample
    gains no recall and repeats the F1 of the next higher present value (or 0 above them all), so both equal
    the sums and maxima over the resample's own distinct scores.
    """
    positive, negative = _class_counts(counts, labels, scores)
    n_positive, n_negative = positive.sum(axis=1), negative.sum(axis=1)
    true_positives = n_positive[:, None] - np.cumsum(positive, axis=1) + positive
    predicted = true_positives + n_negative[:, None] - np.cumsum(negative, axis=1) + negative
    precision = np.divide(true_positives, predicted, out=np.zeros_like(predicted), where=predicted > 0)
    denominator = predicted + n_positive[:, None]
    f1_values = np.divide(2 * true_positives, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    both_classes = (n_positive > 0) & (n_negative > 0)
    return {"auroc": _auroc(positive, negative),
            "ap": np.where(both_classes, _ratio((positive * precision).sum(axis=1), n_positive), np.nan),
            "f1_max": np.where(both_classes, f1_values.max(axis=1), np.nan)}


def decision_metrics(counts: np.ndarray, labels: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
    """f1 = 2TP / (2TP + FP + FN) and gmean = sqrt(TPR * TNR) of the rule p >= 0.5, per resample."""
    predicted, positive = probs >= metrics.DECISION_THRESHOLD, labels == 1
    cells = np.column_stack([predicted & positive, predicted & ~positive, ~predicted & positive,
                             ~predicted & ~positive]).astype(np.float64)
    tp, fp, fn, tn = (counts @ cells).T
    return {"f1": _ratio(2 * tp, 2 * tp + fp + fn), "gmean": np.sqrt(_ratio(tp, tp + fn) * _ratio(tn, tn + fp))}


def ece(counts: np.ndarray, labels: np.ndarray, probs: np.ndarray, n_bins: int = metrics.ECE_BINS) -> np.ndarray:
    """Positive-class ECE: sum over bins of |sum(label) - sum(p)| / n, the bins of ``metrics.bin_index``."""
    gap = np.zeros((probs.size, n_bins))
    gap[np.arange(probs.size), metrics.bin_index(probs, n_bins)] = labels - probs
    return np.abs(counts @ gap).sum(axis=1) / probs.size


def _mean(counts: np.ndarray, per_image: np.ndarray) -> np.ndarray:
    """Count-weighted mean of a per-image quantity (every resample holds n images)."""
    return counts @ per_image / per_image.size


def decision_rates(counts: np.ndarray, labels: np.ndarray, decided: np.ndarray) -> dict[str, np.ndarray]:
    """``fpr_at_alpha`` and ``tpr_at_alpha`` of boolean decisions: the decided share of drawn normal / anomalous
    images (NaN where a resample drew none of the class)."""
    normal, anomalous = (labels == 0).astype(np.float64), (labels == 1).astype(np.float64)
    return {"fpr_at_alpha": _ratio(counts @ (normal * decided), counts @ normal),
            "tpr_at_alpha": _ratio(counts @ (anomalous * decided), counts @ anomalous)}


def brier(counts: np.ndarray, labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Mean (p - label)^2."""
    return _mean(counts, (probs - labels) ** 2)


def nll(counts: np.ndarray, labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Mean negative log-likelihood, p clipped as ``metrics.nll`` clips it."""
    clipped = np.clip(probs, metrics.NLL_CLIP, 1.0 - metrics.NLL_CLIP)
    return _mean(counts, -np.where(labels == 1, np.log(clipped), np.log1p(-clipped)))


def entropy(counts: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Mean binary predictive entropy in nats."""
    return _mean(counts, metrics.binary_entropy(probs))


def image_metrics(counts: np.ndarray, labels: np.ndarray, scores: np.ndarray,
                  probs: np.ndarray) -> dict[str, np.ndarray]:
    """Every ``metrics.IMAGE_METRICS`` entry per resample: ranking metrics on scores, the others on probs."""
    values = {**ranking_metrics(counts, labels, scores), **decision_metrics(counts, labels, probs),
              "ece": ece(counts, labels, probs), "brier": brier(counts, labels, probs),
              "nll": nll(counts, labels, probs), "entropy": entropy(counts, probs)}
    return {name: values[name] for name in metrics.IMAGE_METRICS}


def flag_auroc(counts: np.ndarray, clean_probs: np.ndarray, adv_probs: np.ndarray) -> np.ndarray:
    """AUROC of H(p), adversarial versions against clean ones; a drawn image brings both (pairs stay together)."""
    return statistic_auroc(counts, metrics.binary_entropy(clean_probs), metrics.binary_entropy(adv_probs))


def statistic_auroc(counts: np.ndarray, clean_values: np.ndarray, adv_values: np.ndarray) -> np.ndarray:
    """AUROC of any flag statistic, adversarial versions against clean ones, pairs kept together."""
    is_adversarial = np.repeat([0, 1], clean_values.size)
    return _auroc(*_class_counts(np.hstack([counts, counts]), is_adversarial,
                                 np.concatenate([clean_values, adv_values])))


def flag_tpr(counts: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """Share of adversarial images flagged (``flagged``: ``metrics.flagged`` of their probabilities)."""
    return _mean(counts, flagged.astype(np.float64))


def evasion_rate(counts: np.ndarray, labels: np.ndarray, adv_probs: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """Share of images misclassified after the attack and not flagged."""
    return _mean(counts, (metrics.misclassified(labels, adv_probs) & ~flagged).astype(np.float64))
