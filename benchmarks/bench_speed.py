"""A whole clean run against the bare forward passes it needs; start-up time; fp32 against bf16.

Measured side by side in one run and printed as ratios:
1. start-up: ``robustad --version`` and ``robustad plugins`` in fresh processes (best of 3);
2. DINOv2 ViT-S/14 (seeded random weights: none can be downloaded here) at 448 px on the bottle category,
   1-shot, seed 0: the bare forward passes the run needs (8 rotated reference views and every test image, in the
   run's batches, on tensors already resized), robustad's clean scoring per image, and the whole
   ``robustad bench --attack none`` run in a fresh process, start-up, decoding, kNN and pixel metrics included;
3. decoding and resizing images ahead of the model (a background thread) against doing it inline: the clean stage
   of efficientnet_lite0 at 224 px (where decoding 900x900 PNGs weighs most), in this process;
4. ``--precision bf16`` against fp32: wall time of the same whole run, Spearman correlation of the image scores,
   and, with efficientnet_lite0 at 224 px, the clean AUROC of each;
5. chunks (``--chunk``): clean-stage images per second and PGD-10 seconds per image (white-box, 8/255) at chunk 1
   and at chunk ``CHUNK``, beside the default chunk of this device, for efficientnet_lite0 at 224 px and DINOv2
   ViT-S/14 (random weights) at 448 px, on a subset of bottle (1 reference image, 8 normal and 8 anomalous test
   images, linked into a temporary folder) so that PGD on DINOv2 fits in minutes.
Run: ``ROBUSTAD_TEST_DATA=/path/to/mvtec_ad .venv/bin/python benchmarks/bench_speed.py`` (a folder in the MVTec AD
layout holding bottle/). On a CPU without native bfloat16 instructions robustad warns that bf16 is emulated.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import mvtec_root
from robustad_plugins.anomalydino import rotated_views
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from robustad.kit.images import load_rgb
from robustad.plugins import get_registry

BATCH = 8
CHUNK = 8
SUBSET = 8  # normal and anomalous test images each in the chunk measurement


def fresh_process_seconds(*args: str, repeats: int = 3) -> float:
    """Best wall time of ``robustad ARGS`` in a fresh interpreter."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "robustad", *args], check=True, capture_output=True)
        best = min(best, time.perf_counter() - started)
    return best


def bench_run(root: Path, out: Path, backbone: str, resolution: int, precision: str, extra: list[str]) -> float:
    """Wall time of one clean ``robustad bench`` run in a fresh process (scores saved beside ``out``)."""
    command = [sys.executable, "-m", "robustad", "bench", "--dataset", "mvtec", "--data-root", str(root),
               "--category", "bottle", "--backbone", backbone, "--resolution", str(resolution), "--attack", "none",
               "--calib", "none", "--precision", precision, "--out", str(out), "--save-scores",
               str(out.parent / "scores"), *extra]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"robustad bench failed: {result.stderr.strip()}")
    for line in result.stderr.splitlines():
        print(f"  ({line})")
    return seconds


def saved_scores(out: Path) -> tuple[np.ndarray, np.ndarray]:
    """Labels and clean scores of every test image of the single row in ``out``."""
    [row] = list(csv.DictReader(out.open()))
    with (out.parent / "scores" / f"{row['cell_hash']}.csv").open() as handle:
        lines = list(csv.DictReader(handle))
    order = np.argsort([line["path"] for line in lines])
    return (np.array([int(line["label"]) for line in lines])[order],
            np.array([float(line["clean_score"]) for line in lines])[order])


def bare_forward_seconds(bottle: Path, resolution: int) -> tuple[float, int]:
    """Seconds of the forward passes a 1-shot seed-0 clean run needs, on tensors already resized, and their count."""
    registry = get_registry()
    backbone = registry.get("backbone", "dinov2_vits14").create(weights="random")
    detector = registry.get("detector", "anomalydino").create(backbone, resolution, "bottle")
    reference = load_rgb(sorted((bottle / "train" / "good").glob("*.png"))[0])
    tests = [load_rgb(path) for path in sorted((bottle / "test").glob("*/*.png"))]
    tensors = [detector.preprocess(image) for image in rotated_views(reference) + tests]
    batches = [torch.stack(tensors[i:i + BATCH]) for i in range(0, len(tensors), BATCH)]
    with torch.inference_mode():
        backbone(batches[0][:1])  # warm-up
        started = time.perf_counter()
        for batch in batches:
            backbone(batch)
    return time.perf_counter() - started, len(tensors)


def clean_stage_seconds(root: Path, ahead: int, threads: int) -> float:
    """Seconds of the clean stage of bottle, efficientnet_lite0 at 224 px, decoding ``ahead`` images ahead (0:
    inline) with torch on ``threads`` threads."""
    import robustad.engine.clean as clean
    from robustad.declaration import Request
    from robustad.engine.progress import SilentReporter
    from robustad.engine.request import build_cells
    from robustad.engine.settings import RunSettings

    request = Request(noise_control=False, dataset="mvtec", data_root=root, category="bottle", shots="1", seeds="0",
                      backbone="efficientnet_lite0", weights="", resolution="224", detector="anomalydino",
                      surrogate="score", attack="none", eps="8/255", calib="none", calib_fraction=0.3,
                      options=[])
    [cell] = build_cells(request, get_registry())
    settings = RunSettings(data_root=root, threads=threads, pixel_metrics=False)
    chosen, before = clean.decoding_ahead, torch.get_num_threads()
    clean.decoding_ahead = lambda _: ahead
    torch.set_num_threads(threads)
    try:
        stage = clean.run_clean_stage(cell, settings, get_registry(), SilentReporter(), keep_features=False)
    finally:
        clean.decoding_ahead = chosen
        torch.set_num_threads(before)
    return stage.timings["t_clean_s"]


def bottle_subset(root: Path, folder: Path) -> Path:
    """A folder in the MVTec AD layout with the first reference image and ``SUBSET`` normal and ``SUBSET`` broken
    test images of bottle (symbolic links, masks included)."""
    source, target = root / "bottle", folder / "bottle"
    picks = [("train/good", 1), ("test/good", SUBSET), ("test/broken_large", SUBSET)]
    for part, count in picks:
        (target / part).mkdir(parents=True)
        for path in sorted((source / part).glob("*.png"))[:count]:
            (target / part / path.name).symlink_to(path)
            if part == "test/broken_large":
                mask = source / "ground_truth" / "broken_large" / f"{path.stem}_mask.png"
                (target / "ground_truth" / "broken_large").mkdir(parents=True, exist_ok=True)
                (target / "ground_truth" / "broken_large" / mask.name).symlink_to(mask)
    return folder


def chunk_speed(root: Path, out: Path, backbone: str, resolution: int, chunk: int) -> tuple[float, float]:
    """Clean-stage images per second and PGD-10 seconds per eval image of one in-process run at ``chunk``."""
    import robustad

    weights = "random" if backbone.startswith("dinov2") else ""
    robustad.bench(dataset="mvtec", data_root=root, category="bottle", backbone=backbone, weights=weights,
                   resolution=resolution, surrogate="score", attack="pgd", noise_control=False, eps="8/255",
                   calib="none", chunk=chunk, threads=torch.get_num_threads(), resamples=0, pixel_metrics=False,
                   out=out)
    [row] = list(csv.DictReader(out.open()))
    scored = int(row["n_calib"]) + int(row["n_eval"])
    return scored / float(row["t_clean_s"]), float(row["t_attack_s"]) / int(row["n_eval"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=None,
                        help="a folder in the MVTec AD layout holding bottle/ (default: $ROBUSTAD_TEST_DATA)")
    parser.add_argument("--skip-bf16", action="store_true", help="leave out part 4 (slow where bf16 is emulated)")
    parser.add_argument("--only-chunks", action="store_true", help="run part 5 alone")
    args = parser.parse_args()
    root = mvtec_root(args.data_root)
    print(f"torch threads {torch.get_num_threads()}, batch {BATCH}, bottle 1-shot seed 0")
    if args.only_chunks:
        chunks(root)
        return

    version, plugins = fresh_process_seconds("--version"), fresh_process_seconds("plugins")
    print(f"start-up: robustad --version {version:.2f} s, robustad plugins {plugins:.2f} s")

    from robustad.engine.batches import PREFETCH

    clean_stage_seconds(root, PREFETCH, 1)  # warm-up: file cache, weights
    for threads in sorted({1, torch.get_num_threads()}):
        inline, ahead = clean_stage_seconds(root, 0, threads), clean_stage_seconds(root, PREFETCH, threads)
        print(f"clean stage, efficientnet_lite0 224 px, 83 images, {threads} torch thread(s): decoding inline "
              f"{inline:.1f} s, ahead {ahead:.1f} s (ahead / inline = {ahead / inline:.2f})")

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        bare, passes = bare_forward_seconds(root / "bottle", 448)
        fp32_out = work / "fp32" / "board.csv"
        whole = bench_run(root, fp32_out, "dinov2_vits14", 448, "fp32", ["--weights", "random"])
        [row] = list(csv.DictReader(fp32_out.open()))
        per_image = float(row["t_clean_s"]) / (int(row["n_calib"]) + int(row["n_eval"]))
        print(f"DINOv2 ViT-S/14 448 px: {passes} bare forwards {bare:.1f} s ({bare / passes:.3f} s each); "
              f"robustad clean scoring {per_image:.3f} s/image; whole run {whole:.1f} s "
              f"(fit {float(row['t_fit_s']):.1f} s, clean {float(row['t_clean_s']):.1f} s, "
              f"pixel {float(row['t_pixel_s']):.1f} s); whole / bare = {whole / bare:.2f}")
        if args.skip_bf16:
            return
        bf16_out = work / "bf16" / "board.csv"
        whole_bf16 = bench_run(root, bf16_out, "dinov2_vits14", 448, "bf16", ["--weights", "random"])
        _, fp32_scores = saved_scores(fp32_out)
        _, bf16_scores = saved_scores(bf16_out)
        rho = spearmanr(fp32_scores, bf16_scores).statistic
        print(f"DINOv2 448 bf16: whole run {whole_bf16:.1f} s = {whole_bf16 / whole:.2f} x fp32; "
              f"Spearman of image scores {rho:.4f}")
        aurocs = {}
        for precision in ("fp32", "bf16"):
            out = work / f"lite0-{precision}" / "board.csv"
            bench_run(root, out, "efficientnet_lite0", 224, precision, ["--no-pixel-metrics"])
            labels, scores = saved_scores(out)
            aurocs[precision] = roc_auc_score(labels, scores)
        print(f"efficientnet_lite0 224 px clean AUROC (all test images): fp32 {aurocs['fp32']:.4f}, "
              f"bf16 {aurocs['bf16']:.4f}, difference {abs(aurocs['bf16'] - aurocs['fp32']):.4f}")
    chunks(root)


def chunks(root: Path) -> None:
    """Part 5: chunk 1 against chunk ``CHUNK`` (and this device's default chunk) on the bottle subset."""
    from robustad.engine.settings import default_chunk

    with tempfile.TemporaryDirectory() as folder:
        subset = bottle_subset(root, Path(folder) / "data")
        for backbone, resolution in (("efficientnet_lite0", 224), ("dinov2_vits14", 448)):
            measured = {chunk: chunk_speed(subset, Path(folder) / f"{backbone}-{chunk}.csv", backbone, resolution,
                                           chunk) for chunk in (1, CHUNK)}
            (clean_1, pgd_1), (clean_n, pgd_n) = measured[1], measured[CHUNK]
            print(f"chunks, {backbone} {resolution} px (default chunk on cpu: {default_chunk('cpu')}): clean stage "
                  f"{clean_1:.2f} images/s at chunk 1, {clean_n:.2f} at chunk {CHUNK} (x {clean_n / clean_1:.2f}); "
                  f"PGD-10 {pgd_1:.2f} s/image at chunk 1, {pgd_n:.2f} at chunk {CHUNK} "
                  f"(chunk {CHUNK} / chunk 1 = {pgd_n / pgd_1:.2f})")


if __name__ == "__main__":
    main()
