"""Run the cells of one model prefix, computing every shared stage once (PROTOCOL.md section 8)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from robustad import __version__, metrics
from robustad.components import Component, parse_spec
from robustad.errors import RobustadError
from robustad.engine.grid import NO_ATTACK, Cell
from robustad.kit.images import load_mask, load_rgb
from robustad.plugins import PluginRegistry
from robustad.engine.splits import make_split, parse_shots
from robustad.records import DetectorOutput, Features, Sample, Split
from robustad.kit.threat import TwoLogit, parse_eps


@dataclass(frozen=True)
class RunSettings:
    """Everything about a run that is not part of a cell's key."""

    data_root: Path | None = None
    device: str = "cpu"
    batch_size: int = 8
    pixel_metrics: bool = True
    save_scores: Path | None = None


class Reporter(Protocol):
    """Where the runner reports stage progress (rich bars, plain lines, or nothing)."""

    def stage(self, description: str, total: int) -> None: ...

    def advance(self, count: int = 1) -> None: ...


class SilentReporter:
    """Reports nothing."""

    def stage(self, description: str, total: int) -> None:
        pass

    def advance(self, count: int = 1) -> None:
        pass


def create(registry: PluginRegistry, kind: str, spec: str, cell: Cell, *args: Any, **extra: Any) -> Any:
    """Instantiate the component named by ``spec`` (``name`` or ``name:first-option``) with the cell's options."""
    name, argument = parse_spec(spec)
    component: Component = registry.get(kind, name)
    given = json.loads(cell.options)
    options = {**given.get(f"{kind}.{name}", {}), **given.get(f"{kind}.{spec}", {}),
               **component.spec_options(argument)}
    return component.create(*args, **extra, **options)


@dataclass
class _Batch:
    """A batch of eval images with their clean detector output, ready to be attacked."""

    images: torch.Tensor
    labels: torch.Tensor
    clean: DetectorOutput


@dataclass
class _CleanStage:
    """What every cell of a model prefix shares: split, detector, clean scores, calib features."""

    split: Split
    backbone: torch.nn.Module
    detector: Any
    test_scores: np.ndarray
    test_patch_distances: list[np.ndarray]
    calib_features: Features
    eval_batches: list[_Batch]
    eval_masks: list[np.ndarray] | None
    timings: dict[str, float] = field(default_factory=dict)


def run_group(cells: list[Cell], settings: RunSettings, registry: PluginRegistry,
              reporter: Reporter | None = None) -> Iterator[tuple[Cell, dict]]:
    """Yield ``(cell, row)`` for every cell of one model prefix, each as soon as it is finished."""
    reporter = reporter or SilentReporter()
    shared = _clean_stage(cells[0], settings, registry, reporter)
    n_calib = len(shared.split.calib)
    calib_scores, eval_scores = shared.test_scores[:n_calib], shared.test_scores[n_calib:]
    calib_labels = np.array([s.label for s in shared.split.calib])
    eval_labels = np.array([s.label for s in shared.split.eval])
    clean_pixels = _pixel_metrics(shared, shared.test_patch_distances[n_calib:], "clean")
    surrogates: dict[tuple, tuple[Any, float]] = {}
    adversarial: dict[tuple, tuple[np.ndarray, dict, dict, float]] = {}
    for cell in cells:
        if cell.attack == NO_ATTACK:
            adv_scores, adv_pixels, attack_info, t_attack = None, {}, {}, 0.0
            surrogate, t_surrogate = None, 0.0
        else:
            surrogate_key = (cell.surrogate, cell.options_of("surrogate"))
            if surrogate_key not in surrogates:
                surrogates[surrogate_key] = _fit_surrogate(cell, registry, shared, calib_labels, calib_scores)
            surrogate, t_surrogate = surrogates[surrogate_key]
            if cell.attack_prefix not in adversarial:
                adversarial[cell.attack_prefix] = _attack(cell, registry, shared, surrogate, reporter)
            adv_scores, adv_pixels, attack_info, t_attack = adversarial[cell.attack_prefix]
        started = time.perf_counter()
        calibrator = create(registry, "calibrator", cell.calibrator, cell)
        calibrator.fit(calib_scores, calib_labels)
        row = _row(cell, shared, eval_labels, eval_scores, adv_scores, calibrator, settings)
        row.update(clean_pixels)
        row.update(adv_pixels)
        row.update(attack_info)
        if surrogate is not None:
            row["white_box"] = bool(surrogate.white_box)
        row.update(t_surrogate_s=t_surrogate, t_attack_s=t_attack,
                   t_calib_metrics_s=time.perf_counter() - started)
        if settings.save_scores is not None:
            _save_scores(settings.save_scores / f"{cell.key}.csv", shared, calibrator, adv_scores)
        yield cell, row


def _clean_stage(cell: Cell, settings: RunSettings, registry: PluginRegistry, reporter: Reporter) -> _CleanStage:
    timings = {}
    started = time.perf_counter()
    dataset = create(registry, "dataset", cell.dataset, cell)
    data = dataset.load(settings.data_root, cell.category)
    split = make_split(data, parse_shots(cell.shots), cell.seed, cell.calib_fraction)
    timings["t_split_s"] = time.perf_counter() - started

    started = time.perf_counter()
    backbone = create(registry, "backbone", cell.backbone, cell, weights=cell.weights or None,
                      device=settings.device)
    backbone.eval().requires_grad_(False)
    detector = create(registry, "detector", cell.detector, cell, backbone, cell.resolution, cell.category)
    reporter.stage(f"{cell.category}: memory bank from {len(split.reference)} reference images", 1)
    detector.fit([load_rgb(s.path) for s in split.reference])
    reporter.advance()
    timings["t_fit_s"] = time.perf_counter() - started

    started = time.perf_counter()
    reporter.stage(f"{cell.category}: clean scores", len(split.calib) + len(split.eval))
    sizes: dict[Path, tuple[int, int]] = {}
    scores, distances, calib_features, eval_batches = [], [], [], []
    for part, samples in (("calib", split.calib), ("eval", split.eval)):
        for batch in _chunks(samples, settings.batch_size):
            images = []
            for sample in batch:
                image = load_rgb(sample.path)
                sizes[sample.path] = (image.height, image.width)
                images.append(detector.preprocess(image))
            x = _stack(images, cell).to(settings.device)
            with torch.no_grad():
                features = backbone(x)
                output = detector.score(features)
            scores.append(output.scores)
            distances.extend(output.patch_distances)
            if part == "calib":
                calib_features.append(Features(features.patch_tokens.cpu(), features.global_token.cpu()))
            else:
                eval_batches.append(_Batch(x, torch.tensor([s.label for s in batch]), output))
            reporter.advance(len(batch))
    timings["t_clean_s"] = time.perf_counter() - started
    eval_masks = _eval_masks(split.eval, sizes) if settings.pixel_metrics else None
    return _CleanStage(split, backbone, detector, np.concatenate(scores), distances,
                       _concat_features(calib_features, cell), eval_batches, eval_masks, timings)


def _chunks(samples: list[Sample], size: int) -> Iterator[list[Sample]]:
    for start in range(0, len(samples), size):
        yield samples[start:start + size]


def _stack(images: list[torch.Tensor], cell: Cell) -> torch.Tensor:
    shapes = {tuple(image.shape) for image in images}
    if len(shapes) > 1:
        raise RobustadError(f"images of {cell.dataset}/{cell.category} differ in size after preprocessing "
                            f"({sorted(shapes)}); use --batch-size 1")
    return torch.stack(images)


def _concat_features(parts: list[Features], cell: Cell) -> Features:
    try:
        return Features(torch.cat([p.patch_tokens for p in parts]), torch.cat([p.global_token for p in parts]))
    except RuntimeError:
        raise RobustadError(f"calib images of {cell.dataset}/{cell.category} give patch grids of different "
                            "sizes; the surrogate needs one size") from None


def _fit_surrogate(cell: Cell, registry: PluginRegistry, shared: _CleanStage, labels: np.ndarray,
                   scores: np.ndarray) -> tuple[Any, float]:
    started = time.perf_counter()
    surrogate = create(registry, "surrogate", cell.surrogate, cell)
    surrogate.fit(shared.backbone, shared.detector, shared.calib_features, labels, scores)
    return surrogate, time.perf_counter() - started


def _attack(cell: Cell, registry: PluginRegistry, shared: _CleanStage, surrogate: Any,
            reporter: Reporter) -> tuple[np.ndarray, dict, dict, float]:
    """Adversarial eval scores (and pixel metrics) for one attack prefix; PGD's random start is seeded."""
    started = time.perf_counter()
    attack = create(registry, "attack", cell.attack, cell)
    eps = parse_eps(cell.eps)
    reporter.stage(f"{cell.category}: {cell.attack} {cell.eps} via {cell.surrogate}", len(shared.split.eval))
    scores, distances = [], []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cell.seed)
        for batch in shared.eval_batches:
            model = TwoLogit(surrogate.logit_model(batch.clean)).eval()
            adversarial = attack.perturb(model, batch.images, batch.labels.to(batch.images.device), eps).detach()
            _check_threat_model(adversarial, batch.images, eps, cell)
            with torch.no_grad():
                output = shared.detector.score(shared.backbone(adversarial))
            scores.append(output.scores)
            distances.extend(output.patch_distances)
            reporter.advance(len(batch.labels))
    pixels = _pixel_metrics(shared, distances, "adv")
    info = {"eps_value": eps, **attack.describe(eps)}
    return np.concatenate(scores), pixels, info, time.perf_counter() - started


def _check_threat_model(adversarial: torch.Tensor, clean: torch.Tensor, eps: float, cell: Cell) -> None:
    """Refuse an attack plugin that leaves the L-inf ball or the [0,1] pixel range."""
    distance = float((adversarial - clean).abs().max())
    if distance > eps + 1e-6 or float(adversarial.min()) < 0 or float(adversarial.max()) > 1:
        raise RobustadError(f"attack {cell.attack!r} broke the threat model: L-inf distance {distance:.6f} "
                            f"> eps {eps:.6f} or pixels outside [0,1]")


def _eval_masks(samples: list[Sample], sizes: dict[Path, tuple[int, int]]) -> list[np.ndarray] | None:
    """Ground-truth masks of the eval images (empty for normal ones), loaded once per prefix; None when some
    defect has no mask, so that pixel metrics are left out."""
    if any(s.label == 1 and s.mask is None for s in samples):
        return None
    return [load_mask(s.mask) if s.mask is not None else np.zeros(sizes[s.path], dtype=bool) for s in samples]


def _pixel_metrics(shared: _CleanStage, distances: list[np.ndarray], prefix: str) -> dict:
    """Pixel AUROC and AU-PRO over the eval images, when their masks were loaded."""
    if shared.eval_masks is None:
        return {}
    maps = [shared.detector.anomaly_map(patch_distances, mask.shape)
            for patch_distances, mask in zip(distances, shared.eval_masks)]
    masks = shared.eval_masks
    return {f"{prefix}_pixel_auroc": metrics.pixel_auroc(maps, masks), f"{prefix}_aupro": metrics.aupro(maps, masks)}


def _row(cell: Cell, shared: _CleanStage, labels: np.ndarray, scores: np.ndarray, adv_scores: np.ndarray | None,
         calibrator: Any, settings: RunSettings) -> dict:
    clean_probs = calibrator.predict(scores)
    row: dict[str, Any] = {"cell_hash": cell.key, **{k: getattr(cell, k) for k in Cell.__dataclass_fields__}}
    test_labels = np.array([s.label for s in shared.split.calib + shared.split.eval])
    row.update(
        weights_id=shared.backbone.weights_id,
        n_ref=len(shared.split.reference), n_calib=len(shared.split.calib), n_eval=len(shared.split.eval),
        memory_bank_size=shared.detector.memory_bank_size,
        clean_auroc_full=metrics.auroc(test_labels, shared.test_scores),
        device=settings.device, torch_threads=torch.get_num_threads(), robustad_version=__version__,
        timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **shared.timings,
    )
    row.update({f"clean_{k}": v for k, v in metrics.image_metrics(labels, scores, clean_probs).items()})
    if adv_scores is not None:
        adv_probs = calibrator.predict(adv_scores)
        row.update({f"adv_{k}": v for k, v in metrics.image_metrics(labels, adv_scores, adv_probs).items()})
        row["flag_auroc"] = metrics.flag_auroc(clean_probs, adv_probs)
    return row


def _save_scores(path: Path, shared: _CleanStage, calibrator: Any, adv_scores: np.ndarray | None) -> None:
    """Per-image scores of one cell: clean for every test image, adversarial for every eval image."""
    split = shared.split
    samples = split.calib + split.eval
    n_calib = len(split.calib)
    adv, adv_probs = np.full(len(samples), np.nan), np.full(len(samples), np.nan)
    if adv_scores is not None:
        adv[n_calib:] = adv_scores
        adv_probs[n_calib:] = calibrator.predict(adv_scores)
    frame = pd.DataFrame({
        "path": [str(s.path) for s in samples],
        "split": ["calib"] * n_calib + ["eval"] * len(split.eval),
        "label": [s.label for s in samples],
        "clean_score": shared.test_scores,
        "clean_prob": calibrator.predict(shared.test_scores),
        "adv_score": adv,
        "adv_prob": adv_probs,
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
