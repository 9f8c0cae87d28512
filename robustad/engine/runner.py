"""Run the cells of one model prefix, computing every shared stage once (docs/protocol.md section 8).

The clean stage runs once per model prefix, each surrogate is fitted once, each threat prefix's attacks run
together once, and every cell then only calibrates and measures. A failing component fails the cells that need
it, not the group: every other cell of the group still yields its row.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from robustad import metrics
from robustad.engine import examples
from robustad.engine.attacking import AttackOutcome, attack_threat_group, variant
from robustad.engine.clean import CleanStage, Loaded, run_clean_stage
from robustad.engine.factory import Factory
from robustad.engine.fitted import Fitted
from robustad.engine.flagging import Flags, of_probabilities, reads_images
from robustad.engine.grid import group_by_threat_prefix
from robustad.engine.guard import blame, require_finite
from robustad.engine.progress import Reporter, SilentReporter
from robustad.engine.radii import radius_columns, search_radii
from robustad.engine.rows import (
    FlagValues,
    cell_columns,
    certificate_columns,
    decision_columns,
    image_columns,
    provenance,
)
from robustad.engine.settings import RunSettings
from robustad.errors import RobustadError, one_line
from robustad.kit.threat import parse_eps
from robustad.plugins import PluginRegistry
from robustad.radius import RadiusSearch
from robustad.records import NO_ATTACK, NO_SURROGATE, Cell, Features
from robustad.unpackaged import unpackaged_in


@dataclass
class CellOutcome:
    """A finished cell: its row, or the one-line reason it failed (``unexpected`` when a component raised
    something other than a RobustadError: a bug or a passing fault, which an executor may retry)."""

    cell: Cell
    row: dict | None = None
    error: str | None = None
    unexpected: bool = False

    @classmethod
    def failed(cls, cell: Cell, error: RobustadError) -> CellOutcome:
        cause = error.__cause__
        return cls(cell, error=one_line(error), unexpected=cause is not None and not isinstance(cause, RobustadError))


def run_group(cells: list[Cell], settings: RunSettings, registry: PluginRegistry,
              reporter: Reporter | None = None, loaded: Loaded | None = None) -> Iterator[CellOutcome]:
    """Yield an outcome for every cell of one model prefix, each as soon as it is finished (``loaded``: the
    group's data and split, when the plan made them)."""
    reporter = reporter or SilentReporter()
    try:
        stage = run_clean_stage(cells[0], settings, registry, reporter,
                                keep_features=any(c.surrogate != NO_SURROGATE for c in cells), loaded=loaded)
    except RobustadError as error:
        yield from (CellOutcome.failed(cell, error) for cell in cells)
        return
    group = _Group(stage, settings, registry, reporter)
    for cell in cells:
        if cell.attack == NO_ATTACK:
            yield group.outcome(cell, None)
    for threat_cells in group_by_threat_prefix(cells):
        outcomes = group.attack(threat_cells)
        for cell in threat_cells:
            yield group.outcome(cell, outcomes)


class _Group:
    """The shared state of one model prefix while its cells are measured."""

    def __init__(self, stage: CleanStage, settings: RunSettings, registry: PluginRegistry, reporter: Reporter):
        self.stage, self.settings, self.registry, self.reporter = stage, settings, registry, reporter
        self.surrogates: dict[tuple, Fitted] = {}
        self.calibrators: dict[tuple, Fitted] = {}
        self.pixels: dict[tuple, tuple[dict, float]] = {}  # by attack prefix: adversarial maps differ by eps
        self.radii: dict[tuple, tuple[RadiusSearch, float]] = {}  # by threat prefix (``--radius``), with seconds
        self.factory = Factory(registry)
        self.flags = Flags(stage, self.factory, settings.batch_size)
        self.clean_pixels = self._pixel_metrics("clean", [s.distances for s in stage.eval])

    def attack(self, cells: list[Cell]) -> dict[str, AttackOutcome] | RobustadError:
        """The attack outcomes of one threat prefix, or why its surrogate failed."""
        surrogate = None
        if cells[0].surrogate != NO_SURROGATE:
            surrogate = self._surrogate(cells[0])
            if surrogate.failure is not None:
                return surrogate.failure
        keep = frozenset(examples.chosen(self.stage, self.settings.save_examples))
        try:
            outcomes = attack_threat_group(cells, self.stage, surrogate, self.factory, self.settings.batch_size,
                                           self.reporter, self.flags, keep)
            if cells[0].radius and surrogate is not None:
                self.radii[cells[0].threat_prefix] = search_radii(cells[0], self.stage, surrogate,
                                                                  self.settings.batch_size)
            return outcomes
        except RobustadError as error:
            return error

    def outcome(self, cell: Cell, attacks: dict[str, AttackOutcome] | RobustadError | None) -> CellOutcome:
        try:
            if isinstance(attacks, RobustadError):
                raise attacks
            attacked = None if attacks is None else attacks[variant(cell.attack, cell)]
            if attacked is not None and attacked.failure is not None:
                raise attacked.failure
            return CellOutcome(cell, row=self._row(cell, attacked))
        except RobustadError as error:
            return CellOutcome.failed(cell, error)

    def _surrogate(self, cell: Cell) -> Fitted:
        stage = self.stage
        return self._fitted(self.surrogates, "surrogate", cell, lambda surrogate: surrogate.fit(
            stage.backbone, stage.detector, [Features(f.patch_tokens.clone(), f.global_token.clone())
                                             for f in stage.calib_features], read_only(stage.calib_labels),
            read_only(stage.calib_scores)))

    def _calibrator(self, cell: Cell) -> Fitted:
        fitted = self._fitted(self.calibrators, "calibrator", cell,
                              lambda calibrator: calibrator.fit(read_only(self.stage.calib_scores),
                                                                read_only(self.stage.calib_labels)))
        if fitted.failure is not None:
            raise fitted.failure
        return fitted

    def _fitted(self, cache: dict[tuple, Fitted], kind: str, cell: Cell, fit: Callable[[Any], object]) -> Fitted:
        """The cell's component of ``kind``, created with its options and fitted on calib once per spec and options
        (or the one-line reason it failed), with the seconds that took."""
        spec = getattr(cell, kind)
        key = self.factory.key(cell, kind, spec)
        if key not in cache:
            component = self.factory.component(kind, spec)
            fitted = Fitted(component)
            started = time.perf_counter()
            try:
                fitted.instance = self.factory.build(cell, kind, spec).instance
                with blame(component):
                    fit(fitted.instance)
            except RobustadError as error:
                fitted.failure = error
            fitted.seconds = time.perf_counter() - started
            cache[key] = fitted
        return cache[key]

    def _probabilities(self, fitted: Fitted, scores: np.ndarray) -> np.ndarray:
        with blame(fitted.component):
            probs = np.array(fitted.instance.predict(read_only(scores)), dtype=np.float64).reshape(-1)
        require_finite(probs, fitted.component, "probabilities")
        if probs.shape != scores.shape or probs.min(initial=0.0) < 0 or probs.max(initial=0.0) > 1:
            raise RobustadError(f"{fitted.component.label()} returned probabilities of shape {probs.shape} or "
                                f"outside [0, 1]; expected {scores.shape[0]} values in [0, 1]")
        return probs

    def _row(self, cell: Cell, attacked: AttackOutcome | None) -> dict:
        started = time.perf_counter()
        stage = self.stage
        calibrator = self._calibrator(cell)
        labels, clean_scores = stage.eval_labels, stage.eval_scores
        adv_scores = None if attacked is None else attacked.scores
        clean_probs = self._probabilities(calibrator, clean_scores)
        calib_probs = self._probabilities(calibrator, stage.calib_scores)
        adv_probs = None if adv_scores is None else self._probabilities(calibrator, adv_scores)
        test_labels = np.concatenate([stage.calib_labels, labels])
        row = cell_columns(cell)
        row.update(
            weights_id=stage.backbone.weights_id,
            n_ref=len(stage.split.reference), n_calib=len(stage.split.calib), n_eval=len(stage.split.eval),
            memory_bank_size=getattr(stage.detector, "memory_bank_size", None), ref_hash=stage.reference_hash(),
            clean_auroc_full=metrics.auroc(test_labels, np.concatenate([stage.calib_scores, clean_scores])),
            calib_degenerate=bool(calibrator.handle.optional("degenerate")),
            **stage.timings,
        )
        defense = stage.backbone.defense
        if defense is not None:  # what the defense declared, recorded so the audit can check it against the rows
            row.update(defense_differentiable=defense.differentiable, defense_randomized=defense.randomized,
                       defense_samples=defense.samples, report_draws=defense.report_draws)
        if cell.cert_radius:
            row.update(certificate_columns(labels, stage.eval_draws, defense.certified_sigma,
                                           parse_eps(cell.cert_radius, "l2"), cell.cert_alpha,
                                           resamples=self.settings.resamples, seed=cell.seed))
        flag = self._flag_values(cell, attacked, (calib_probs, clean_probs, adv_probs))
        row.update(image_columns(labels, clean_scores, clean_probs, flag, adv_scores, adv_probs,
                                 resamples=self.settings.resamples, seed=cell.seed))
        row.update(self._decision_columns(calibrator, cell, labels, clean_scores, adv_scores))
        pixels, pixel_seconds = self.clean_pixels
        row.update(pixels)
        if attacked is not None:
            adv_pixels, adv_seconds = self._attack_pixels(cell.attack_prefix, attacked)
            pixel_seconds += adv_seconds
            surrogate = None if cell.surrogate == NO_SURROGATE else self._surrogate(cell)
            row.update(attacked.settings)
            row.update(adv_pixels, eps_value=parse_eps(cell.eps, cell.norm),
                       white_box=None if surrogate is None else bool(surrogate.handle.optional("white_box")),
                       zero_grad_share=attacked.gradients.share, t_attack_s=attacked.seconds,
                       t_surrogate_s=0.0 if surrogate is None else surrogate.seconds)
        radii, radius_seconds = self.radii.get(cell.threat_prefix, (None, 0.0)) if cell.radius else (None, 0.0)
        if radii is not None:
            row.update(radius_columns(radii, radius_seconds, resamples=self.settings.resamples, seed=cell.seed))
        if attacked is not None and self.settings.save_examples:
            examples.save(self.settings.examples_dir, cell, stage, attacked.kept, attacked.distances, attacked.scores,
                          parse_eps(cell.eps, cell.norm))
        if self.settings.save_scores is not None:
            _save_scores(self.settings.save_scores / f"{cell.key}.csv", stage, calib_probs, clean_probs,
                         adv_scores, adv_probs, flag, None if radii is None else radii.radii)
        row.update(t_pixel_s=pixel_seconds, t_calib_metrics_s=time.perf_counter() - started)
        row.update(provenance(self.settings.device, torch.get_num_threads()),
                   unpackaged=unpackaged_in(cell, self.registry))
        return row

    def _flag_values(self, cell: Cell, attacked: AttackOutcome | None,
                     probs: tuple[np.ndarray, np.ndarray, np.ndarray | None]) -> FlagValues:
        """The cell's flag on calib, clean eval and attacked eval images: from the calibrated probabilities, or
        (a flag that reads images) the values the clean and attack stages computed once."""
        flag = self.flags.handle(cell, cell.flag)
        if reads_images(flag):
            calib, clean = self.flags.clean(cell, cell.flag)
            adv = None if attacked is None else attacked.flags[cell.flag]
        else:
            stage = self.stage
            calib, clean, adv = (None if p is None else of_probabilities(flag, scores, p) for scores, p in
                                 zip((stage.calib_scores, stage.eval_scores, None if attacked is None
                                      else attacked.scores), probs))
        return FlagValues(calib, clean, adv, cell.flag_fpr)

    def _decision_columns(self, calibrator: Fitted, cell: Cell, labels: np.ndarray, clean_scores: np.ndarray,
                          adv_scores: np.ndarray | None) -> dict:
        """A calibrator's own decision at its ``alpha`` (``conformal``): its false- and true-positive rates on the
        clean eval images and on their attacked versions; nothing for calibrators without one."""
        alpha = calibrator.handle.optional("alpha")
        if alpha is None:
            return {}
        decided = {}
        for side, scores in (("clean", clean_scores), ("adv", adv_scores)):
            if scores is not None:
                decided[side] = np.asarray(calibrator.handle.call("decide", read_only(scores)), dtype=bool).reshape(-1)
                if decided[side].shape != scores.shape:
                    raise RobustadError(f"{calibrator.component.label()} decide() returned {decided[side].shape[0]} "
                                        f"decisions; expected {scores.shape[0]}")
        return decision_columns(labels, alpha, decided, resamples=self.settings.resamples, seed=cell.seed,
                                fpr_bound=calibrator.handle.optional("fpr_bound"))

    def _attack_pixels(self, attack_prefix: tuple, attacked: AttackOutcome) -> tuple[dict, float]:
        """Pixel metrics of one attack prefix's adversarial maps, computed once for all its calibrators."""
        if attack_prefix not in self.pixels:
            self.pixels[attack_prefix] = self._pixel_metrics("adv", attacked.distances)
        return self.pixels[attack_prefix]

    def _pixel_metrics(self, prefix: str, distances: list[np.ndarray]) -> tuple[dict, float]:
        """Pixel AUROC and AU-PRO over the eval images, when their masks were loaded, and the seconds taken."""
        truth = self.stage.eval_truth
        if truth is None:
            return {}, 0.0
        started = time.perf_counter()
        with blame(self.stage.components["detector"]):
            maps = [self.stage.detector.anomaly_map(d, mask.shape) for d, mask in zip(distances, truth)]
        values = {f"{prefix}_{name}": value for name, value in metrics.localisation(maps, truth).items()}
        return values, time.perf_counter() - started


def read_only(values: np.ndarray) -> np.ndarray:
    """A view of engine data that plugin code cannot write into (a calibrator sorting its scores in place would
    change every later row of the group)."""
    view = np.asarray(values).view()
    view.flags.writeable = False
    return view


def _save_scores(path: Path, stage: CleanStage, calib_probs: np.ndarray, clean_probs: np.ndarray,
                 adv_scores: np.ndarray | None, adv_probs: np.ndarray | None, flag: FlagValues,
                 radii: np.ndarray | None = None) -> None:
    """Per-image scores and flag values of one cell: clean for every test image, adversarial for every eval
    image, and each eval image's robustness radius where the cell searched it (``inf``: not moved within eps)."""
    split = stage.split
    samples = split.calib + split.eval
    n_calib = len(split.calib)
    missing = np.full(n_calib, np.nan)
    frame = pd.DataFrame({
        "path": [str(s.path) for s in samples],
        "split": ["calib"] * n_calib + ["eval"] * len(split.eval),
        "label": [s.label for s in samples],
        "clean_score": np.concatenate([stage.calib_scores, stage.eval_scores]),
        "clean_prob": np.concatenate([calib_probs, clean_probs]),
        "adv_score": np.concatenate([missing, adv_scores if adv_scores is not None else np.full(len(split.eval),
                                                                                             np.nan)]),
        "adv_prob": np.concatenate([missing, adv_probs if adv_probs is not None else np.full(len(split.eval),
                                                                                          np.nan)]),
        "clean_flag": np.concatenate([flag.calib, flag.clean]),
        "adv_flag": np.concatenate([missing, flag.adv if flag.adv is not None else np.full(len(split.eval), np.nan)]),
    })
    if radii is not None:
        frame["radius"] = np.concatenate([missing, radii])
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
