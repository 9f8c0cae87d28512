"""Attack flags in the engine (docs/protocol.md section 6): a flag's statistic on batches of images or
probabilities, its calib threshold, and the differentiable flag that a flag-aware attack evades.

A flag that reads images is evaluated once per image and attack (whatever the calibrator); one that reads
probabilities once per row, from the calibrated posterior. Random draws (``consistency``) are seeded by the image's
name, so an image and its attacked version see the same draws and the flag compares like with like.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from robustad import metrics
from robustad.contracts import FlagTarget, FlagView
from robustad.engine.clean import CleanStage
from robustad.engine.factory import Factory
from robustad.engine.guard import require_finite
from robustad.engine.handles import Handle
from robustad.engine.identity import image_seed
from robustad.errors import RobustadError
from robustad.records import Cell, Sample

ScoreFunction = Callable[[torch.Tensor], torch.Tensor]


def reads_images(flag: Handle) -> bool:
    return flag.instance.reads == "images"


def flag_seeds(cell: Cell, spec: str, names: Sequence[str]) -> list[int]:
    """One seed per image for the flag's random draws, from the cell seed and the image's relative name."""
    return [image_seed(cell.seed, f"flag:{spec}:{name}") for name in names]


def statistic(flag: Handle, view: FlagView) -> torch.Tensor:
    """The flag's values ``(B,)`` of one batch, checked for shape and finiteness."""
    values = flag.call("statistic", view)
    if not isinstance(values, torch.Tensor) or values.reshape(-1).shape[0] != view.scores.shape[0]:
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise RobustadError(f"{flag.component.label()} statistic() returned {shape}; expected "
                            f"{view.scores.shape[0]} values")
    return values.reshape(-1)


def of_images(flag: Handle, images: torch.Tensor, seeds: Sequence[int], score: ScoreFunction) -> np.ndarray:
    """A flag's values on a batch of images, without gradient; ``score`` maps images to detector scores."""
    with torch.no_grad():
        view = FlagView(scores=score(images), images=images, score=score, seeds=seeds)
        values = statistic(flag, view).double().cpu().numpy()
    require_finite(values, flag.component, "flag values")
    return values


def of_probabilities(flag: Handle, scores: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """A flag's values from detector scores and their calibrated probabilities."""
    with torch.no_grad():
        view = FlagView(scores=torch.as_tensor(scores, dtype=torch.float64),
                        probs=torch.as_tensor(probs, dtype=torch.float64))
        values = statistic(flag, view).double().cpu().numpy()
    require_finite(values, flag.component, "flag values")
    return values


def attack_flag(flag: Handle, spec: str, threshold: float, seeds: Sequence[int], score: ScoreFunction,
                posterior: Callable[[torch.Tensor], torch.Tensor] | None) -> FlagTarget:
    """The differentiable flag a flag-aware attack evades on one batch: ``score`` is the detector's score through
    the surrogate's logit (with gradient), ``posterior`` the attack's own calibrated probability of a score (for
    a flag that reads probabilities)."""

    def values(images: torch.Tensor) -> torch.Tensor:
        scores = score(images)
        if reads_images(flag):
            return statistic(flag, FlagView(scores=scores, images=images, score=score, seeds=seeds))
        return statistic(flag, FlagView(scores=scores, probs=posterior(scores)))

    return FlagTarget(spec=spec, statistic=values, threshold=threshold)


class Flags:
    """The flags of one model prefix: each spec built once, and the clean values of a flag that reads images
    (calib and eval images) computed once, whatever the attack and calibrator."""

    def __init__(self, stage: CleanStage, factory: Factory, batch_size: int) -> None:
        self.stage, self.factory, self.batch_size = stage, factory, batch_size
        self.handles: dict[tuple, Handle] = {}  # by Factory.key, as the caches below
        self.clean_values: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self.posteriors: dict[tuple, Callable[[torch.Tensor], torch.Tensor]] = {}

    def handle(self, cell: Cell, spec: str) -> Handle:
        key = self.factory.key(cell, "flag", spec)
        if key not in self.handles:
            self.handles[key] = self.factory.build(cell, "flag", spec)
        return self.handles[key]

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """Detector scores of images, without gradient."""
        return torch.as_tensor(self.stage.score(images).scores, device=images.device)

    def clean(self, cell: Cell, spec: str) -> tuple[np.ndarray, np.ndarray]:
        """An image flag's values on the clean calib and eval images."""
        key = self.factory.key(cell, "flag", spec)
        if key not in self.clean_values:
            stage = self.stage
            evaluated = ((indices, images) for indices, images, _ in stage.eval_batches(self.batch_size))
            self.clean_values[key] = (self._of_batches(cell, spec, stage.split.calib,
                                                       stage.calib_batches(self.batch_size)),
                                      self._of_batches(cell, spec, stage.split.eval, evaluated))
        return self.clean_values[key]

    def _of_batches(self, cell: Cell, spec: str, samples: list[Sample],
                    batches: Iterable[tuple[list[int], torch.Tensor]]) -> np.ndarray:
        """An image flag's values on batches of ``samples`` (their indices and images), in sample order."""
        flag, stage = self.handle(cell, spec), self.stage
        values = np.zeros(len(samples))
        for indices, images in batches:
            seeds = flag_seeds(cell, spec, [stage.names[samples[i].path] for i in indices])
            values[indices] = of_images(flag, images.to(stage.backbone.device), seeds, self.score)
        return values

    def adversarial(self, cell: Cell, spec: str, indices: list[int], images: torch.Tensor) -> np.ndarray:
        """An image flag's values on attacked eval images (seeded as their clean versions)."""
        names = [self.stage.names[self.stage.split.eval[i].path] for i in indices]
        return of_images(self.handle(cell, spec), images, flag_seeds(cell, spec, names), self.score)

    def for_attack(self, cell: Cell, spec: str, indices: list[int], score: ScoreFunction,
                   posterior_spec: str) -> FlagTarget:
        """The flag ``spec`` as a flag-aware attack on eval images ``indices`` sees it, thresholded as the rows
        threshold it: on its clean calib values at the cell's false-flag rate. A flag that reads probabilities goes
        through the posterior of calibrator ``posterior_spec``, fitted on the clean calib scores."""
        flag, stage = self.handle(cell, spec), self.stage
        names = [stage.names[stage.split.eval[i].path] for i in indices]
        if reads_images(flag):
            calib = self.clean(cell, spec)[0]
            return attack_flag(flag, spec, threshold(calib, cell.flag_fpr), flag_seeds(cell, spec, names), score,
                               None)
        posterior = self._posterior(cell, posterior_spec)
        calib_scores = torch.as_tensor(stage.calib_scores, dtype=torch.float64)
        calib = of_probabilities(flag, stage.calib_scores, posterior(calib_scores).numpy())
        return attack_flag(flag, spec, threshold(calib, cell.flag_fpr), (), score, posterior)

    def _posterior(self, cell: Cell, spec: str) -> Callable[[torch.Tensor], torch.Tensor]:
        """A calibrator fitted on the clean calib scores as a differentiable map of scores: its own values forward,
        a central difference over a tenth of the calib scores' spread backward (BPDA for a step fit). Its options
        are those the cell records for it (``--opt`` included), else its spec's."""
        key = self.factory.key(cell, "calibrator", spec)
        if key not in self.posteriors:
            stage = self.stage
            calibrator = self.factory.build(cell, "calibrator", spec)
            calibrator.call("fit", stage.calib_scores.copy(), stage.calib_labels.copy())
            step = 0.1 * float(np.std(stage.calib_scores) or 1.0)

            def predict(values: np.ndarray) -> np.ndarray:
                return np.asarray(calibrator.call("predict", values), dtype=np.float64).reshape(-1)

            self.posteriors[key] = _Smoothed.bind(predict, step)
        return self.posteriors[key]


class _Smoothed(torch.autograd.Function):
    """p(s) exactly forward; dp/ds by a central difference of width 2 ``step`` backward."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, predict: Callable, step: float) -> torch.Tensor:
        values = scores.detach().double().cpu().numpy()
        ctx.slope = torch.as_tensor((predict(values + step) - predict(values - step)) / (2 * step),
                                    dtype=scores.dtype, device=scores.device)
        return torch.as_tensor(predict(values), dtype=scores.dtype, device=scores.device)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple:
        return grad * ctx.slope, None, None

    @classmethod
    def bind(cls, predict: Callable, step: float) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda scores: cls.apply(scores, predict, step)


def threshold(values: np.ndarray, fpr: float) -> float:
    """The calib threshold of a flag at the false-flag rate ``fpr`` (``metrics.statistic_threshold``)."""
    return metrics.statistic_threshold(values, fpr)
