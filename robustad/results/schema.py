"""The leaderboard's columns, built once from the names the metrics, the cell and the attack contract define."""

from __future__ import annotations

from robustad.contracts import ATTACK_SETTINGS
from robustad.metrics import ATTACK_METRICS, DECISION_RATES, IMAGE_METRICS, PIXEL_METRICS
from robustad.records import CELL_FIELDS

LEGACY_MARK = "data_sha"
"""Rows without it were written before keys covered the images' content (records.Cell.legacy_key)."""
TIMINGS = ("t_split_s", "t_fit_s", "t_clean_s", "t_pixel_s", "t_surrogate_s", "t_attack_s", "t_calib_metrics_s")
INTERVAL_COLUMNS = (*(f"{side}_{m}" for side in ("clean", "adv") for m in IMAGE_METRICS), *ATTACK_METRICS,
                    *(f"{side}_{m}" for side in ("clean", "adv") for m in DECISION_RATES), "cert_auroc")
"""Columns that come with a bootstrap interval ``<column>_ci_low`` / ``<column>_ci_high``."""

COLUMNS = (
    "cell_hash", *CELL_FIELDS,
    "weights_id", "white_box", "defense_differentiable", "defense_randomized", "defense_samples", "eps_value",
    *ATTACK_SETTINGS,
    "n_ref", "n_calib", "n_eval", "memory_bank_size", "ref_hash",
    "clean_auroc_full",
    *(f"clean_{m}" for m in IMAGE_METRICS + PIXEL_METRICS),
    *(f"adv_{m}" for m in IMAGE_METRICS + PIXEL_METRICS),
    *ATTACK_METRICS,
    "conformal_alpha", "conformal_fpr_bound", "conformal_guarantee",
    *(f"{side}_{m}" for side in ("clean", "adv") for m in DECISION_RATES),
    "cert_auroc", "cert_sigma", "cert_infinite", "cert_joint_alpha",
    *(f"{column}_ci_{bound}" for column in INTERVAL_COLUMNS for bound in ("low", "high")),
    "bootstrap_resamples", "bootstrap_skipped",
    "calib_degenerate", "zero_grad_share", "flag_threshold",
    *TIMINGS,
    "device", "torch_threads", "robustad_version", "torch_version", "timm_version", "faiss_version", "timestamp",
)
