"""What a defense costs: seconds per image of the clean pass behind each built-in defense (a randomized one scores
every draw), and of one white-box gradient with EOT, each as a ratio to the undefended clean pass, measured side
by side in one process on the same images.

Images: the real bottle images when ROBUSTAD_TEST_DATA names an MVTec AD folder, else the synthetic demo set;
efficientnet_lite0 (real ImageNet weights) with AnomalyDINO at 224 px, 1-shot, one torch thread.
Run: .venv/bin/python benchmarks/bench_defenses.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from robustad.declaration import Request
from robustad.engine.attacking import ChunkedLogits, ZeroGradients, same_model
from robustad.engine.clean import run_clean_stage
from robustad.engine.progress import SilentReporter
from robustad.engine.request import build_cells
from robustad.engine.settings import RunSettings
from robustad.plugins import get_registry

DEFENSES = ("none", "jpeg", "bitdepth", "median", "blur", "gaussian", "smoothing")
EOT = (1, 8)
IMAGES = 8
REPEATS = 3


def request(defense: str, root: Path | None) -> Request:
    return Request(noise_control=False,
        dataset="mvtec" if root else "demo", data_root=root, category="bottle" if root else "weave", shots="1",
        seeds="0", backbone="efficientnet_lite0", weights="", resolution="224", detector="anomalydino",
        surrogate="score", attack="fgsm", eps="8/255", calib="platt", calib_fraction=0.3, options=[],
        defense=defense)


def best_of(action, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    torch.set_num_threads(1)
    setting = os.environ.get("ROBUSTAD_TEST_DATA")
    root = Path(setting) if setting and (Path(setting) / "bottle").is_dir() else None
    registry = get_registry()
    settings = RunSettings(data_root=root, pixel_metrics=False, threads=1)
    print(f"images: {'real bottle' if root else 'synthetic demo'}, {IMAGES} eval images, best of {REPEATS}")
    baseline = None
    print(f"{'defense':<10} {'clean s/img':>12} {'x undefended':>13} " +
          " ".join(f"{'grad eot ' + str(e) + ' x':>14}" for e in EOT))
    for defense in DEFENSES:
        cell = next(c for c in build_cells(request(defense, root), registry) if c.attack == "fgsm")
        stage = run_clean_stage(cell, settings, registry, SilentReporter(), keep_features=True)
        images = torch.cat([batch for _, batch, _ in stage.eval_batches(IMAGES)])[:IMAGES]
        clean = best_of(lambda: stage.score(images)) / IMAGES
        baseline = baseline or clean
        surrogate = registry.get("surrogate", "score").create()
        surrogate.fit(stage.backbone, stage.detector, stage.calib_features, stage.calib_labels, stage.calib_scores)
        z_model = surrogate.logit_model(stage.score(images))
        ratios = []
        for eot in EOT:
            def gradient() -> None:
                x = images.clone().requires_grad_(True)
                ChunkedLogits(same_model(z_model), ZeroGradients(), eot)(x)[:, 1].sum().backward()

            randomized = stage.backbone.defense is not None and stage.backbone.defense.randomized
            ratios.append(best_of(gradient) / IMAGES / baseline if randomized or eot == 1 else float("nan"))
        print(f"{defense:<10} {clean:>12.4f} {clean / baseline:>13.2f} " +
              " ".join(f"{r:>14.2f}" for r in ratios))
    print("grad columns: one white-box gradient (score surrogate) per image as a ratio to the undefended clean pass;"
          " EOT applies to randomized defenses only (nan elsewhere)")


if __name__ == "__main__":
    main()
