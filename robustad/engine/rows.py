"""One leaderboard row from stored scores (docs/protocol.md sections 6, 7, 9): metrics, intervals, evasion, provenance.

Pure functions of arrays and records: the calibrator and metrics are cheap, so they run per cell on scores that
the clean and attack stages computed once per prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from robustad import metrics
from robustad.certify import certified_auroc, joint_alpha, median_bounds
from robustad.intervals import bootstrap_intervals, certificate_intervals, decision_intervals
from robustad.records import Cell
from robustad.version import __version__

PROVENANCE_PACKAGES = {"torch_version": ("torch",), "timm_version": ("timm",),
                       "faiss_version": ("faiss-cpu", "faiss-gpu", "faiss")}


@dataclass(frozen=True)
class FlagValues:
    """One flag's statistic on the calib, clean eval and attacked eval images (None without an attack), and the
    false-flag rate on calib that sets its threshold."""

    calib: np.ndarray
    clean: np.ndarray
    adv: np.ndarray | None
    fpr: float


def image_columns(labels: np.ndarray, clean_scores: np.ndarray, clean_probs: np.ndarray, flag: FlagValues,
                  adv_scores: np.ndarray | None, adv_probs: np.ndarray | None, *, resamples: int,
                  seed: int) -> dict:
    """Every image metric, clean and adversarial, the cell's flag and evasion, each with its bootstrap interval.

    The flag threshold is the ``1 - fpr`` quantile of the flag's values on the clean calib images (at most a share
    ``fpr`` of false flags there; for the entropy at 0.05 the 95th percentile, as before flags were a kind).
    """
    threshold = metrics.statistic_threshold(flag.calib, flag.fpr)
    row: dict = {f"clean_{k}": v for k, v in metrics.image_metrics(labels, clean_scores, clean_probs).items()}
    row["flag_threshold"] = threshold
    attacked = adv_scores is not None and adv_probs is not None
    if attacked:
        flagged = flag.adv > threshold
        row.update({f"adv_{k}": v for k, v in metrics.image_metrics(labels, adv_scores, adv_probs).items()})
        row.update(flag_auroc=metrics.statistic_auroc(flag.clean, flag.adv), flag_tpr=float(flagged.mean()),
                   evasion_rate=metrics.evaded(labels, adv_probs, flagged))
    row["bootstrap_resamples"] = resamples
    if resamples:
        intervals = bootstrap_intervals(labels, clean_scores, clean_probs, adv_scores, adv_probs,
                                        flag_threshold=threshold, flag_values=(flag.clean, flag.adv) if attacked
                                        else None, resamples=resamples, seed=seed).containing(row)
        for column, (low, high) in intervals.bounds.items():
            row[f"{column}_ci_low"], row[f"{column}_ci_high"] = low, high
        row["bootstrap_skipped"] = max(intervals.skipped.values(), default=0)
    return row


def decision_columns(labels: np.ndarray, alpha: float, decided: dict[str, np.ndarray], *, resamples: int,
                     seed: int, fpr_bound: float | None = None) -> dict:
    """A calibrator's own decision at ``alpha``: its false- and true-positive rates on each side (``clean``,
    ``adv``) of ``decided``, with bootstrap intervals over the image draws the other intervals use, and the exact
    finite-sample bound on the clean false-positive rate it guarantees (marginally over calib sets), if it has one."""
    row: dict = {"conformal_alpha": float(alpha)}
    if fpr_bound is not None:
        row.update(conformal_fpr_bound=float(fpr_bound), conformal_guarantee="marginal")
    for side, flags in decided.items():
        row.update({f"{side}_{k}": v for k, v in metrics.decision_rates(labels, flags).items()})
    if resamples:
        intervals = decision_intervals(labels, decided, resamples=resamples, seed=seed).containing(row)
        for column, (low, high) in intervals.bounds.items():
            row[f"{column}_ci_low"], row[f"{column}_ci_high"] = low, high
    return row


def certificate_columns(labels: np.ndarray, draws: np.ndarray, sigma: float, radius: float, alpha: float, *,
                        resamples: int, seed: int) -> dict:
    """The certified AUROC of median smoothing at L2 ``radius`` from each eval image's scores under the defense's
    draws ``(n_eval, samples)`` (docs/protocol.md section 10), with its bootstrap interval over the eval images and
    the share of images whose bound is infinite (too few draws for ``alpha``). ``cert_joint_alpha``: the certified
    AUROC needs every eval image's bound at once, so it holds with probability at least 1 - n_eval * alpha
    (Bonferroni, ``certify.joint_alpha``)."""
    lower, upper = median_bounds(draws, sigma, radius, alpha)
    worst = np.where(np.asarray(labels) == 1, lower, upper)
    row = {"cert_auroc": certified_auroc(labels, lower, upper), "cert_sigma": float(sigma),
           "cert_infinite": float(np.mean(np.isinf(worst))), "cert_joint_alpha": joint_alpha(alpha, worst.size)}
    if resamples:
        intervals = certificate_intervals(labels, worst, resamples=resamples, seed=seed).containing(row)
        row["cert_auroc_ci_low"], row["cert_auroc_ci_high"] = intervals.bounds["cert_auroc"]
    return row


def cell_columns(cell: Cell) -> dict:
    """The cell's own fields and its key."""
    return {"cell_hash": cell.key, **{name: getattr(cell, name) for name in Cell.__dataclass_fields__}}


def provenance(device: str, threads: int) -> dict:
    """Where and with what a row was computed."""
    return {"device": device, "torch_threads": threads, "robustad_version": __version__, **_package_versions(),
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")}


@lru_cache(maxsize=1)
def _package_versions() -> dict:
    found = {}
    for column, names in PROVENANCE_PACKAGES.items():
        found[column] = ""
        for name in names:
            try:
                found[column] = version(name)
                break
            except PackageNotFoundError:
                continue
    return found
