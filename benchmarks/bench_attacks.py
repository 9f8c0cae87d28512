"""What an attack costs: seconds per image of FGSM and PGD-10 through each surrogate, as a ratio to one clean
scoring pass (backbone forward + detector score), on a few real bottle eval images (1-shot, seed 0).

    .venv/bin/python benchmarks/bench_attacks.py                 # efficientnet_lite0 at 224, 8 images
    .venv/bin/python benchmarks/bench_attacks.py --memory        # peak RSS of a score-surrogate PGD step,
                                                                 # DINOv2 ViT-S/14 (random weights) at 448

Memory is read with ``resource.getrusage`` (peak RSS) in one fresh subprocess per batch size: tracemalloc does
not see torch's allocations, and a process's peak never goes down.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from robustad.engine.splits import make_split
from robustad.kit.images import load_rgb
from robustad.kit.threat import TwoLogit
from robustad.plugins import get_registry

DATA_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mvtec_ad"
EPS = 8 / 255
SURROGATES = ("linear", "score")
ATTACKS = ("fgsm", "pgd")


def prepare(backbone_name: str, resolution: int, weights: str | None = None):
    """Backbone, fitted detector and the bottle split (1-shot, seed 0)."""
    registry = get_registry()
    data = registry.get("dataset", "mvtec").create().load(DATA_ROOT, "bottle")
    split = make_split(data, shots=1, seed=0)
    backbone = registry.get("backbone", backbone_name).create(**({"weights": weights} if weights else {}))
    detector = registry.get("detector", "anomalydino").create(backbone, resolution, "bottle")
    detector.fit([load_rgb(sample.path) for sample in split.reference])
    return backbone, detector, split


def batch_of(detector, samples) -> tuple[torch.Tensor, np.ndarray]:
    images = torch.stack([detector.preprocess(load_rgb(sample.path)) for sample in samples])
    return images, np.array([sample.label for sample in samples])


def best_seconds(function, repeats: int) -> float:
    """Fastest wall time of ``repeats`` runs: the minimum is the run least disturbed by other work."""
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        runs.append(time.perf_counter() - started)
    return min(runs)


def speed(backbone_name: str, resolution: int, count: int, repeats: int) -> None:
    """Each attack is timed right after its own clean pass, so a ratio compares runs under the same machine load."""
    backbone, detector, split = prepare(backbone_name, resolution)
    registry = get_registry()
    calib, calib_labels = batch_of(detector, split.calib)
    evaluation, labels = batch_of(detector, split.eval[:: max(1, len(split.eval) // count)][:count])
    with torch.no_grad():
        calib_features = backbone(calib)
        calib_scores = detector.score(calib_features).scores
        clean = detector.score(backbone(evaluation))

    def clean_pass() -> None:
        with torch.no_grad():
            detector.score(backbone(evaluation))

    table = Table(title=f"attack cost, bottle, {backbone_name}@{resolution}, {len(evaluation)} images, "
                        f"eps 8/255, {torch.get_num_threads()} threads, best of {repeats}")
    for column in ("surrogate", "attack", "clean pass s / image", "attack s / image", "x clean pass"):
        table.add_column(column, justify="right")
    for surrogate_name in SURROGATES:
        surrogate = registry.get("surrogate", surrogate_name).create()
        surrogate.fit(backbone, detector, calib_features, calib_labels, calib_scores)
        for attack_name in ATTACKS:
            attack = registry.get("attack", attack_name).create()
            clean_seconds = best_seconds(clean_pass, repeats) / len(evaluation)
            seconds = best_seconds(lambda: attack.perturb(TwoLogit(surrogate.logit_model(clean)), evaluation,
                                                          labels, EPS), repeats) / len(evaluation)
            table.add_row(surrogate_name, attack_name, f"{clean_seconds:.3f}", f"{seconds:.3f}",
                          f"{seconds / clean_seconds:.1f}")
    Console().print(table)


def memory_child(batch: int) -> None:
    """One PGD step through the score surrogate with DINOv2 ViT-S/14 (random weights) at 448; print peak RSS."""
    backbone, detector, split = prepare("dinov2_vits14", 448, weights="random")
    registry = get_registry()
    images, labels = batch_of(detector, (split.eval * batch)[:batch])
    with torch.no_grad():
        clean = detector.score(backbone(images))
    surrogate = registry.get("surrogate", "score").create()
    surrogate.fit(backbone, detector, None, np.array([0, 1]), np.array([0.1, 0.2]))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    attack = registry.get("attack", "pgd").create(steps=1)
    seconds = best_seconds(lambda: attack.perturb(TwoLogit(surrogate.logit_model(clean)), images, labels, EPS), 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{batch} {before / 2**20:.2f} {peak / 2**20:.2f} {seconds:.1f}")


def memory(batches: list[int]) -> None:
    table = Table(title="peak RSS of one score-surrogate PGD step, DINOv2 ViT-S/14 (random weights) at 448, bottle")
    for column in ("batch", "RSS before attack GiB", "peak RSS GiB", "GiB / image", "step s"):
        table.add_column(column, justify="right")
    for batch in batches:
        result = subprocess.run([sys.executable, __file__, "--memory-child", str(batch)],
                                capture_output=True, text=True, check=True)
        _, before, peak, seconds = result.stdout.split()[-4:]
        per_image = (float(peak) - float(before)) / batch
        table.add_row(str(batch), before, peak, f"{per_image:.2f}", seconds)
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row; the fastest is kept")
    parser.add_argument("--memory", action="store_true", help="measure peak memory instead of speed")
    parser.add_argument("--batches", default="1,4,8,16", help="batch sizes for --memory")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
    elif args.memory:
        memory([int(b) for b in args.batches.split(",")])
    else:
        speed(args.backbone, args.resolution, args.images, args.repeats)


if __name__ == "__main__":
    main()
