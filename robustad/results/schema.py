"""The leaderboard's columns, built once from the names the metrics, the cell and the attack contract define."""

from __future__ import annotations

import math

from robustad.contracts import ATTACK_SETTINGS
from robustad.metrics import ATTACK_METRICS, DECISION_RATES, IMAGE_METRICS, METRIC_RANGES, PIXEL_METRICS, UNIT
from robustad.records import CELL_FIELDS

LEGACY_MARK = "data_sha"
"""Rows without it were written before keys covered the images' content (records.Cell.legacy_key)."""
TIMINGS = ("t_split_s", "t_fit_s", "t_clean_s", "t_pixel_s", "t_surrogate_s", "t_attack_s", "t_calib_metrics_s",
           "t_radius_s")
INTERVAL_COLUMNS = (*(f"{side}_{m}" for side in ("clean", "adv") for m in IMAGE_METRICS), *ATTACK_METRICS,
                    *(f"{side}_{m}" for side in ("clean", "adv") for m in DECISION_RATES), "cert_auroc")
"""Columns that come with a bootstrap interval ``<column>_ci_low`` / ``<column>_ci_high``."""

RADIUS_COLUMNS = ("radius_median", "radius_median_ci_low", "radius_median_ci_high", "radius_tol", "radius_eps_max",
                  "radius_steps", "radius_unmoved")
"""The robustness radius of a ``--radius`` row (``engine.radii``): eps units of the row's norm, >= 0."""

COLUMNS = (
    "cell_hash", *CELL_FIELDS,
    "weights_id", "white_box", "defense_differentiable", "defense_randomized", "defense_samples", "report_draws",
    "eps_value",
    *ATTACK_SETTINGS,
    "n_ref", "n_calib", "n_eval", "memory_bank_size", "ref_hash",
    "clean_auroc_full",
    *(f"clean_{m}" for m in IMAGE_METRICS + PIXEL_METRICS),
    *(f"adv_{m}" for m in IMAGE_METRICS + PIXEL_METRICS),
    *ATTACK_METRICS,
    "conformal_alpha", "conformal_fpr_bound", "conformal_guarantee",
    *(f"{side}_{m}" for side in ("clean", "adv") for m in DECISION_RATES),
    "cert_auroc", "cert_sigma", "cert_infinite", "cert_joint_alpha",
    *RADIUS_COLUMNS,
    *(f"{column}_ci_{bound}" for column in INTERVAL_COLUMNS for bound in ("low", "high")),
    "bootstrap_resamples", "bootstrap_skipped",
    "calib_degenerate", "zero_grad_share", "flag_threshold",
    *TIMINGS,
    "device", "torch_threads", "robustad_version", "torch_version", "timm_version", "faiss_version", "unpackaged",
    "timestamp",
)

_ANY_SIZE = (0.0, math.inf)
_METRIC_COLUMN_RANGES = {
    **{f"{side}_{m}": METRIC_RANGES[m] for side in ("clean", "adv") for m in (*IMAGE_METRICS, *PIXEL_METRICS,
                                                                            *DECISION_RATES)},
    **{m: METRIC_RANGES[m] for m in ATTACK_METRICS},
    "clean_auroc_full": METRIC_RANGES["auroc"], "cert_auroc": METRIC_RANGES["auroc"],
}
RANGES: dict[str, tuple[float, float]] = {
    **_METRIC_COLUMN_RANGES,
    **{f"{c}_ci_{bound}": _METRIC_COLUMN_RANGES[c] for c in INTERVAL_COLUMNS for bound in ("low", "high")},
    "zero_grad_share": UNIT, "flag_fpr": UNIT, "calib_fraction": UNIT, "conformal_alpha": UNIT, "cert_alpha": UNIT,
    "cert_sigma": _ANY_SIZE, **dict.fromkeys(TIMINGS, _ANY_SIZE),
    **dict.fromkeys(("radius_median", "radius_median_ci_low", "radius_median_ci_high", "radius_tol",
                     "radius_eps_max"), _ANY_SIZE), "radius_unmoved": UNIT,
}
"""The closed interval each number column lies in (metrics from ``metrics.METRIC_RANGES``): reading a leaderboard
checks its values against them (``results.ranges``)."""
COUNTS: dict[str, int] = {"seed": 0, "n_ref": 0, "n_calib": 0, "n_eval": 0, "memory_bank_size": 0,
                          "bootstrap_resamples": 0, "bootstrap_skipped": 0, "resolution": 1, "eot_samples": 1,
                          "chunk": 1, "protocol": 1, "defense_samples": 1, "torch_threads": 1, "radius_steps": 0}
"""Integer columns and the least value each may hold."""
