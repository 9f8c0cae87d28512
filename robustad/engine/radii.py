"""The robustness radius stage of one threat prefix (``--radius``, docs/protocol.md section 6): per eval image the
smallest eps, up to the cell's, at which PGD through the cell's surrogate moves it across the decision threshold.

The threshold is the F1-optimal one on the clean calib scores (``metrics.f1_optimal_threshold``, the tau the
``score`` surrogate and ``temperature`` use), so the radius does not depend on the calibrator and is searched once
for every cell of the threat prefix. Every iterate is judged by the detector's reported score (``stage.score``:
behind a randomized defense, on the reporting draws); the gradients are the surrogate's, in the cell's chunks and
EOT draws, as the attacks take them.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch

from robustad import metrics
from robustad.engine.attacking import ChunkedLogits, ZeroGradients, logit_models
from robustad.engine.clean import CleanStage
from robustad.engine.fitted import Fitted
from robustad.kit.threat import parse_eps
from robustad.radius import RadiusSearch, median_radius, search
from robustad.records import Cell


def search_radii(cell: Cell, stage: CleanStage, surrogate: Fitted, batch_size: int) -> tuple[RadiusSearch, float]:
    """The radius of every eval image (in eval order) against the calib F1-optimal threshold, up to the cell's
    eps (inf where the search did not cross there), and the seconds the search took."""
    started = time.perf_counter()
    eps_max = parse_eps(cell.eps, cell.norm)
    threshold = metrics.f1_optimal_threshold(stage.calib_labels, stage.calib_scores)
    radii = np.full(len(stage.split.eval), np.inf)
    found = None
    defense = stage.backbone.defense
    with defense.attacked_with(cell.bpda) if defense is not None else contextlib.nullcontext():
        for indices, images, clean in stage.eval_batches(batch_size if cell.chunk == 1 else cell.chunk):
            images = images.to(stage.backbone.device)
            labels = torch.as_tensor(stage.eval_labels[indices], dtype=torch.int64, device=images.device)
            model = ChunkedLogits(logit_models(surrogate, clean), ZeroGradients(), cell.eot_samples, cell.chunk,
                                  len(indices))
            found = search(model, lambda x: torch.as_tensor(stage.score(x).scores), images, labels, threshold,
                           norm=cell.norm, eps_max=eps_max)
            radii[indices] = found.radii
    tolerance = eps_max if found is None else found.tolerance
    steps = 0 if found is None else found.gradient_steps
    return RadiusSearch(radii, tolerance, eps_max, cell.norm, steps), time.perf_counter() - started


def radius_columns(found: RadiusSearch, seconds: float, *, resamples: int, seed: int) -> dict:
    """The row's radius columns: the median over eval images with its percentile bootstrap interval over them
    (empty where censored: a median beyond eps_max is not a number the row can hold), the bracket's tolerance,
    eps_max, the gradient steps per image, the share of images the search never moved within eps_max and the
    seconds the search took (``t_radius_s``)."""
    median, low, high = median_radius(found.radii, resamples=max(resamples, 1), seed=seed)
    row = {"radius_median": _finite(median), "radius_tol": found.tolerance, "radius_eps_max": found.eps_max,
           "radius_steps": found.gradient_steps, "radius_unmoved": float(np.mean(np.isinf(found.radii))),
           "t_radius_s": seconds}
    if resamples:
        row.update(radius_median_ci_low=_finite(low), radius_median_ci_high=_finite(high))
    return row


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None
