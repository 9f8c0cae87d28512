"""One leaderboard row from stored scores (docs/protocol.md sections 6, 7, 9): metrics, intervals, evasion, provenance.

Pure functions of arrays and records: the calibrator and metrics are cheap, so they run per cell on scores that
the clean and attack stages computed once per prefix.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from robustad import __version__, metrics
from robustad.intervals import bootstrap_intervals
from robustad.records import Cell

PROVENANCE_PACKAGES = {"torch_version": ("torch",), "timm_version": ("timm",),
                       "faiss_version": ("faiss-cpu", "faiss-gpu", "faiss")}


def image_columns(labels: np.ndarray, clean_scores: np.ndarray, clean_probs: np.ndarray, calib_probs: np.ndarray,
                  adv_scores: np.ndarray | None, adv_probs: np.ndarray | None, *, resamples: int,
                  seed: int) -> dict:
    """Every image metric, clean and adversarial, the entropy flag and evasion, each with its bootstrap interval.

    The flag threshold is the 95th percentile of the entropy of the clean calib probabilities (5 % false flags).
    """
    threshold = metrics.flag_threshold(calib_probs)
    row: dict = {f"clean_{k}": v for k, v in metrics.image_metrics(labels, clean_scores, clean_probs).items()}
    row["flag_threshold"] = threshold
    if adv_scores is not None and adv_probs is not None:
        row.update({f"adv_{k}": v for k, v in metrics.image_metrics(labels, adv_scores, adv_probs).items()})
        row.update(flag_auroc=metrics.flag_auroc(clean_probs, adv_probs),
                   flag_tpr=metrics.flag_tpr(adv_probs, threshold),
                   evasion_rate=metrics.evasion_rate(labels, adv_probs, threshold))
    row["bootstrap_resamples"] = resamples
    if resamples:
        intervals = bootstrap_intervals(labels, clean_scores, clean_probs, adv_scores, adv_probs,
                                        flag_threshold=threshold, resamples=resamples, seed=seed).containing(row)
        for column, (low, high) in intervals.bounds.items():
            row[f"{column}_ci_low"], row[f"{column}_ci_high"] = low, high
        row["bootstrap_skipped"] = max(intervals.skipped.values(), default=0)
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
