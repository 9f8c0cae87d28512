"""Each detector's cost per image on the real bottle images: its clean scoring, and a white-box gradient step.

For each detector on efficientnet_lite0 at 224 px (``--backbone``/``--resolution`` for others): (a) the backbone
forward alone (with the layers the detector reads), (b) the clean scoring (forward + the detector's score, no
gradient) and (c) one white-box gradient (forward + ``score_tensor`` + backward to the input pixels: what an
attack step costs through the ``score`` surrogate), in seconds per image, with the ratios b/a and c/b.
Preprocessing is excluded: every timed batch is the same pre-resized tensor. Times are the best of ``--repeats``
interleaved rounds after one warm-up round.
Run: ``.venv/bin/python benchmarks/bench_detector.py [--device cuda]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
from common import mvtec_root
from PIL import Image

from robustad.plugins import get_registry

DETECTORS = ("anomalydino", "patchcore", "subspacead")


def best_seconds(steps: list[Callable[[], object]], repeats: int, device: torch.device) -> list[float]:
    """Fastest wall time of each step over ``repeats`` rounds, after one untimed warm-up round.

    The steps alternate within every round, so a burst of load from other processes hits all of them alike.
    """
    best = [float("inf")] * len(steps)
    for round_ in range(repeats + 1):
        for position, step in enumerate(steps):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if round_ > 0:
                best[position] = min(best[position], time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bottle", type=Path, default=None,
                        help="MVTec AD bottle folder (default: $ROBUSTAD_TEST_DATA/bottle)")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--weights", default=None, help="backbone weights (e.g. random for DINOv2 here)")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    parser.add_argument("--images", type=int, default=4, help="test images per timed batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds; the best one counts")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    args.bottle = args.bottle or mvtec_root() / "bottle"

    reference = [Image.open(sorted((args.bottle / "train" / "good").glob("*.png"))[0]).convert("RGB")]
    tests = [Image.open(path).convert("RGB") for path in sorted((args.bottle / "test").glob("*/*.png"))]
    tests = tests[::max(1, len(tests) // args.images)][:args.images]  # spread over good and defect types
    registry = get_registry()
    backbone = registry.get("backbone", args.backbone).create(weights=args.weights, device=args.device)
    device = next(backbone.network.parameters()).device
    print(f"bottle, 1-shot, {args.backbone} at {args.resolution} px, {len(tests)} test images per batch, device "
          f"{args.device}, torch threads {torch.get_num_threads()}; preprocessing excluded; best of {args.repeats}")
    print(f"{'detector':<14}{'bank':>7}{'forward s/img':>15}{'clean s/img':>13}{'/fwd':>6}{'grad s/img':>12}"
          f"{'grad/clean':>12}")
    for name in args.detectors.split(","):
        component = registry.get("detector", name)
        detector = component.create(backbone, args.resolution, **component.runtime_keywords(category="bottle", seed=0))
        detector.fit(reference)
        layers = getattr(detector, "layers", ())
        batch = torch.stack([detector.preprocess(image) for image in tests]).to(device)

        def forward() -> object:
            with torch.no_grad():
                return backbone(batch, layers=layers)

        def clean() -> object:
            with torch.no_grad():
                return detector.score(backbone(batch, layers=layers))

        def gradient() -> torch.Tensor:
            images = batch.clone().requires_grad_(True)
            detector.score_tensor(backbone(images, layers=layers), None).sum().backward()
            return images.grad

        seconds = best_seconds([forward, clean, gradient], args.repeats, device)
        per_image = [value / len(tests) for value in seconds]
        print(f"{name:<14}{getattr(detector, 'memory_bank_size', ''):>7}{per_image[0]:>15.4f}{per_image[1]:>13.4f}"
              f"{seconds[1] / seconds[0]:>6.2f}{per_image[2]:>12.4f}{seconds[2] / seconds[1]:>12.2f}")


if __name__ == "__main__":
    main()
