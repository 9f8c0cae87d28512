"""The clean stage of one model prefix (docs/protocol.md sections 2, 3, 8): split, memory bank, clean scores.

Computed once for every cell that shares the prefix: the reference set fits the detector, every calib and eval
image is scored once, and what later stages need is kept per image (images may differ in size): scores, patch
distances, foreground masks, calib features for the surrogate, and the eval images themselves while they fit in
``EVAL_CACHE_BYTES`` (beyond that they are decoded again, batch by batch, when attacked).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from robustad.components import Component
from robustad.contracts import Detector
from robustad.engine.batches import PREFETCH, Item, batches, chunk_aligned, prepared
from robustad.engine.defended import REPORTING, SELECTION, DefenseStep, draw
from robustad.engine.factory import Factory
from robustad.engine.guard import GuardedBackbone, blame, joined_features, require_finite
from robustad.engine.handles import Handle
from robustad.engine.identity import names_hash, relative_names
from robustad.engine.own_forward import forward_of
from robustad.engine.progress import Reporter
from robustad.engine.settings import RunSettings, machine_cores
from robustad.engine.splits import make_split, parse_shots, require_reference
from robustad.kit.images import load_mask, load_rgb
from robustad.plugins import PluginRegistry
from robustad.records import NO_DEFENSE, CategoryData, Cell, DetectorOutput, Features, Sample, Split

if TYPE_CHECKING:
    from PIL import Image

EVAL_CACHE_BYTES = 1 << 30
Loaded = tuple[CategoryData, Split]  # a category's data and one cell's split of it


@dataclass
class Scored:
    """One test image's clean detector output."""

    score: float
    distances: np.ndarray  # (h, w) patch distances
    mask: np.ndarray | None  # (h, w) foreground kept by the detector, or None
    size: tuple[int, int]  # (height, width) of the original image
    draws: np.ndarray | None = None  # behind a certified defense: the score of each of its draws (samples,)


@dataclass
class CleanStage:
    """What every cell of a model prefix shares."""

    split: Split
    names: dict[Path, str]
    components: dict[str, Component]
    backbone: GuardedBackbone
    detector: Detector
    calib: list[Scored]
    eval: list[Scored]
    calib_features: list[Features]
    eval_images: list[torch.Tensor] | None
    eval_truth: list[np.ndarray] | None  # ground-truth defect masks at image size, when every defect has one
    timings: dict[str, float] = field(default_factory=dict)
    prefetch: int = 0  # images decoded ahead by a background thread (0: decoded inline)

    @property
    def calib_labels(self) -> np.ndarray:
        return np.array([s.label for s in self.split.calib])

    @property
    def eval_labels(self) -> np.ndarray:
        return np.array([s.label for s in self.split.eval])

    @property
    def calib_scores(self) -> np.ndarray:
        return np.array([s.score for s in self.calib])

    @property
    def eval_scores(self) -> np.ndarray:
        return np.array([s.score for s in self.eval])

    @property
    def eval_draws(self) -> np.ndarray | None:
        """Each eval image's score under each draw of a certified defense ``(n_eval, samples)``; else None."""
        if not self.eval or self.eval[0].draws is None:
            return None
        return np.stack([s.draws for s in self.eval])

    def reference_hash(self) -> str:
        return names_hash(self.split.reference, self.names)

    def eval_batches(self, batch_size: int) -> Iterator[tuple[list[int], torch.Tensor, DetectorOutput]]:
        """Eval images batched by size: their indices, the image batch, and their clean detector output."""
        if self.eval_images is not None:
            items: Any = (Item(i, self.eval_images[i], self.eval[i].size) for i in range(len(self.split.eval)))
        else:
            items = prepared(self.split.eval, self._preprocess, prefetch=self.prefetch)
        for batch in batches(items, chunk_aligned(batch_size, self.backbone.chunk)):
            indices = [item.index for item in batch]
            scored = [self.eval[i] for i in indices]
            masks = None if scored[0].mask is None else np.stack([s.mask for s in scored])
            output = DetectorOutput(np.array([s.score for s in scored]), np.stack([s.distances for s in scored]),
                                    masks)
            yield indices, torch.stack([item.image for item in batch]), output

    def calib_batches(self, batch_size: int) -> Iterator[tuple[list[int], torch.Tensor]]:
        """Calib images batched by size, decoded again (only flags that read images need them)."""
        for batch in batches(prepared(self.split.calib, self._preprocess, prefetch=self.prefetch), batch_size):
            yield [item.index for item in batch], torch.stack([item.image for item in batch])

    def score(self, images: torch.Tensor) -> DetectorOutput:
        """The detector's output on a batch of images, without gradient: what rows report (behind a randomized
        defense, on the reporting draws, which no attack can query)."""
        return self.forward(images)[1]

    def select(self, images: torch.Tensor) -> DetectorOutput:
        """The output an attack may query and select on: behind a randomized defense, its ``samples`` selection
        draws (never the reporting ones); else ``score``."""
        defense = self.backbone.defense
        if defense is None or not defense.randomized:
            return self.score(images)
        return self.forward_draws(images, SELECTION, defense.samples)[1]

    def forward(self, images: torch.Tensor) -> tuple[Features, DetectorOutput]:
        """Features and detector output of a batch, without gradient; non-finite scores refused. Behind a
        randomized defense the scores are its ``aggregate`` over its reporting draws, the patch distances their
        mean, the features and masks those of the first draw."""
        features, output, _ = self.forward_draws(images)
        return features, output

    def forward_draws(self, images: torch.Tensor, first: int = REPORTING,
                      count: int | None = None) -> tuple[Features, DetectorOutput, np.ndarray]:
        """``forward`` with the score of every draw, ``(count, B)``: draws ``first .. first + count - 1``, by default
        the reporting draws (one row without a randomized defense)."""
        defense = self.backbone.defense
        if count is None:
            count = defense.report_draws if defense is not None else 1
        draws = [self._forward_once(images, first + index) for index in range(count)]
        features, head = draws[0]
        scores = np.stack([np.asarray(output.scores, dtype=np.float64).reshape(-1) for _, output in draws])
        if len(draws) == 1:
            return features, head, scores
        combined = np.median(scores, axis=0) if defense.aggregate == "median" else scores.mean(axis=0)
        distances = np.mean([np.asarray(output.patch_distances) for _, output in draws], axis=0)
        return features, DetectorOutput(combined, distances, head.masks, head.extra), scores

    def _forward_once(self, images: torch.Tensor, index: int) -> tuple[Features, DetectorOutput]:
        """Backbone and detector chunk by chunk (``GuardedBackbone``: a row depends on the chunk, not the batch)."""
        chunk = self.backbone.chunk
        parts = []
        with torch.inference_mode(), draw(index):
            for start in range(0, images.shape[0], chunk):
                features = self.backbone(images[start:start + chunk].to(self.backbone.device))
                with blame(self.components["detector"]):
                    parts.append((features, self.detector.score(features)))
        features, output = parts[0] if len(parts) == 1 else joined(parts)
        require_finite(output.scores, self.components["detector"], "image scores")
        return features, output

    def _preprocess(self, image: Image.Image) -> torch.Tensor:
        with blame(self.components["detector"]):
            return self.detector.preprocess(image)


def joined(parts: list[tuple[Features, DetectorOutput]]) -> tuple[Features, DetectorOutput]:
    """The features and detector outputs of consecutive chunks as those of one batch."""
    outputs = [o for _, o in parts]
    masks = None if outputs[0].masks is None else np.concatenate([np.asarray(o.masks) for o in outputs])
    extra = {key: [v for o in outputs for v in o.extra.get(key, ())] for key in outputs[0].extra}
    return (joined_features([f for f, _ in parts]),
            DetectorOutput(np.concatenate([np.asarray(o.scores) for o in outputs]),
                           np.concatenate([np.asarray(o.patch_distances) for o in outputs]), masks, extra))


def run_clean_stage(cell: Cell, settings: RunSettings, registry: PluginRegistry, reporter: Reporter,
                    keep_features: bool, loaded: Loaded | None = None) -> CleanStage:
    """Split, fit and score for the model prefix of ``cell``; ``loaded``: its data and split as the plan made
    them, so that they are not loaded and drawn again."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    factory = Factory(registry)
    components = {kind: factory.component(kind, spec) for kind, spec in
                  (("dataset", cell.dataset), ("backbone", cell.backbone), ("detector", cell.detector))}
    data, split = loaded or load(cell, settings, factory)
    require_reference(parse_shots(cell.shots), components["detector"])
    timings["t_split_s"] = time.perf_counter() - started

    started = time.perf_counter()
    network = factory.build(cell, "backbone", cell.backbone, weights=_weights(cell, settings),
                            device=settings.device).instance
    defense = None
    if cell.defense != NO_DEFENSE:
        built = factory.build(cell, "defense", cell.defense)
        components["defense"] = built.component
        defense = DefenseStep(built, cell.seed)
    backbone = GuardedBackbone(network, components["backbone"], cell.precision, settings.device, defense,
                               cell.chunk)
    metadata = components["detector"].runtime_keywords(category=cell.category, seed=cell.seed)
    detector = factory.build(cell, "detector", cell.detector, backbone, cell.resolution, **metadata).instance
    backbone.layers = tuple(getattr(detector, "layers", ()))
    backbone.backbone = forward_of(network, Handle(components["detector"], detector))  # an ImageDetector's own
    reporter.stage(f"{cell.category}: memory bank from {len(split.reference)} reference images", 1)
    Handle(components["detector"], detector).call("fit", [load_rgb(s.path) for s in split.reference])
    reporter.advance()
    timings["t_fit_s"] = time.perf_counter() - started

    stage = CleanStage(split, relative_names(data), components, backbone, detector, [], [], [], None, None,
                       prefetch=decoding_ahead(settings))
    started = time.perf_counter()
    reporter.stage(f"{cell.category}: clean scores", len(split.calib) + len(split.eval))
    stage.calib, stage.calib_features, _ = _score_all(stage, split.calib, settings, reporter, keep_features, False)
    stage.eval, _, stage.eval_images = _score_all(stage, split.eval, settings, reporter, False, True)
    timings["t_clean_s"] = time.perf_counter() - started
    if settings.pixel_metrics:
        stage.eval_truth = _ground_truth(split.eval, stage.eval)
    stage.timings = timings
    return stage


def load(cell: Cell, settings: RunSettings, factory: Factory) -> Loaded:
    """A cell's category and split, loaded and drawn (where no plan made them: a Ray worker, a test)."""
    data = factory.build(cell, "dataset", cell.dataset).call("load", settings.data_root, cell.category)
    return data, make_split(data, parse_shots(cell.shots), cell.seed, cell.calib_fraction, cell.limit)


def decoding_ahead(settings: RunSettings) -> int:
    """How many images a background thread decodes ahead of the model: some when the model leaves a core free for
    it (a GPU, or fewer torch threads than cores), none when torch uses every core, where a decoding thread
    competes with it (``benchmarks/bench_speed.py`` on 2 cores: ahead / inline 0.80 with 1 torch thread; 0.92 to
    1.03 over three runs with 2, no gain beyond the noise)."""
    return PREFETCH if not settings.device.startswith("cpu") or settings.threads < machine_cores() else 0


def _weights(cell: Cell, settings: RunSettings) -> str | None:
    """The ``weights`` value the backbone is built with: the run's file for a file digest, else the identity."""
    if cell.weights.startswith("sha256:"):
        return str(settings.weights_file)
    return cell.weights or None


def _score_all(stage: CleanStage, samples: list[Sample], settings: RunSettings, reporter: Reporter,
               keep_features: bool, keep_images: bool) -> tuple[list[Scored], list[Features], list | None]:
    """Score ``samples`` in size-bucketed batches; results back in sample order."""
    scored: list[Scored | None] = [None] * len(samples)
    features: list[Features | None] = [None] * len(samples)
    images: list[torch.Tensor | None] | None = [None] * len(samples) if keep_images else None
    cached = 0
    size = chunk_aligned(settings.batch_size, stage.backbone.chunk)
    for batch in batches(prepared(samples, stage._preprocess, prefetch=stage.prefetch), size):
        batch_features, output, draws = stage.forward_draws(torch.stack([item.image for item in batch]))
        certified = stage.backbone.defense is not None and stage.backbone.defense.certified_sigma is not None
        for row, item in enumerate(batch):
            mask = None if output.masks is None else np.asarray(output.masks[row], dtype=bool)
            scored[item.index] = Scored(float(output.scores[row]), np.asarray(output.patch_distances[row]), mask,
                                        item.size, draws[:, row].copy() if certified else None)
            if keep_features:
                features[item.index] = Features(batch_features.patch_tokens[row:row + 1].cpu(),
                                                batch_features.global_token[row:row + 1].cpu())
            if images is not None:
                cached += item.image.numel() * item.image.element_size()
                if cached > EVAL_CACHE_BYTES:
                    images = None
                else:
                    images[item.index] = item.image
        reporter.advance(len(batch))
    return scored, features if keep_features else [], images


def _ground_truth(samples: list[Sample], scored: list[Scored]) -> list[np.ndarray] | None:
    """Defect masks of the eval images at their original size (empty for normal images); None when some defect
    has no mask, so that pixel metrics are left out."""
    if any(s.label == 1 and s.mask is None for s in samples):
        return None
    return [load_mask(s.mask) if s.mask is not None else np.zeros(r.size, dtype=bool)
            for s, r in zip(samples, scored)]
