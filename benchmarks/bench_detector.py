"""How much the anomalydino detector adds to a plain backbone forward, per image, on the real bottle images.

For each backbone: (a) the backbone forward alone, (b) the full clean scoring (forward + foreground mask when
enabled + exact faiss 1-NN search + top 1 % mean) and (c) the differentiable scoring an attack step runs
(forward + chunked nearest search + top 1 %, no backward), in seconds per image, and the ratios b/a and c/a.
Preprocessing (PIL resize) is excluded: every timed batch is the same pre-resized tensor. Times are the best
of ``--repeats`` interleaved rounds after one warm-up round.
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

# (backbone, resolution, backbone options): DINOv2 with random weights (none can be downloaded here)
CASES = [("dinov2_vits14", 448, {"weights": "random"}), ("efficientnet_lite0", 224, {})]


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
    parser.add_argument("--images", type=int, default=8, help="test images per timed batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds; the best one counts")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    args.bottle = args.bottle or mvtec_root() / "bottle"

    reference = [Image.open(sorted((args.bottle / "train" / "good").glob("*.png"))[0]).convert("RGB")]
    tests = [Image.open(path).convert("RGB") for path in sorted((args.bottle / "test").glob("*/*.png"))]
    tests = tests[::max(1, len(tests) // args.images)][:args.images]  # spread over good and defect types
    registry = get_registry()
    print(f"bottle, 1-shot, {len(tests)} test images per batch, device {args.device}, "
          f"torch threads {torch.get_num_threads()}; preprocessing excluded; best of {args.repeats}")
    print(f"{'backbone':<20}{'res':>5}{'bank':>8}{'forward s/img':>15}{'score s/img':>13}{'ratio':>7}"
          f"{'diff. s/img':>13}{'ratio':>7}")
    for name, resolution, options in CASES:
        backbone = registry.get("backbone", name).create(device=args.device, **options)
        detector = registry.get("detector", "anomalydino").create(backbone, resolution, "bottle")
        detector.fit(reference)
        device = next(backbone.parameters()).device
        batch = torch.stack([detector.preprocess(image) for image in tests]).to(device)
        with torch.no_grad():
            forward, scoring, differentiable = best_seconds([
                lambda: backbone(batch),
                lambda: detector.score(backbone(batch)),
                lambda: detector.score_tensor(backbone(batch), None),
            ], args.repeats, device)
        per_image = [seconds / len(tests) for seconds in (forward, scoring, differentiable)]
        print(f"{name:<20}{resolution:>5}{detector.memory_bank_size:>8}{per_image[0]:>15.4f}{per_image[1]:>13.4f}"
              f"{scoring / forward:>7.2f}{per_image[2]:>13.4f}{differentiable / forward:>7.2f}")


if __name__ == "__main__":
    main()
