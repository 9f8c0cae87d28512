"""What an attack costs: seconds per image of each attack at its default settings, as a ratio to one clean scoring
pass (backbone forward + detector score), on a few real bottle eval images (1-shot, seed 0, eps 8/255).

    .venv/bin/python benchmarks/bench_attacks.py                 # efficientnet_lite0 at 224, 8 images
    .venv/bin/python benchmarks/bench_attacks.py --memory        # peak RSS of a score-surrogate PGD step,
                                                                 # DINOv2 ViT-S/14 (random weights) at 448
    .venv/bin/python benchmarks/bench_attacks.py --radius        # the radius search against one PGD-10 run

The bench builds the ``AttackTarget`` itself, as the engine does: the surrogate's model is evaluated one image at a
time, and with the white-box ``score`` surrogate iterates are judged from z through its ``score_of``, as the engine
judges them; with ``linear`` every judged iterate costs one detector pass. ``worstcase`` and ``standard``
compute their members themselves (as they would in a grid without them), so their rows are about the sum of
theirs; the last lines print each attack's cost as a ratio to ``pgd``'s and ``worstcase``'s, timed in the same run.
The last two columns, the mean move of the real score the adversarial way (normal images up, anomalous ones down),
show how far each attack gets beyond the noise control. Memory is read with ``resource.getrusage`` (peak RSS) in
one fresh subprocess per batch size: tracemalloc does not see torch's allocations, and a process's peak never goes
down.
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
from common import mvtec_root
from rich.console import Console
from rich.table import Table

from robustad.components import parse_spec
from robustad.contracts import AttackTarget, Perturbed
from robustad.engine.attacking import ChunkedLogits, ZeroGradients, same_model
from robustad.engine.splits import make_split
from robustad.kit.images import load_rgb
from robustad.plugins import get_registry
from robustad.records import Features

EPS = 8 / 255
ATTACKS = ("noise", "fgsm", "pgd", "apgd", "square", "worstcase", "standard")


def prepare(backbone_name: str, resolution: int, data_root: Path, weights: str | None = None):
    """Backbone, fitted detector and the bottle split (1-shot, seed 0)."""
    registry = get_registry()
    data = registry.get("dataset", "mvtec").create().load(data_root, "bottle")
    split = make_split(data, shots=1, seed=0)
    backbone = registry.get("backbone", backbone_name).create(**({"weights": weights} if weights else {}))
    detector = registry.get("detector", "anomalydino").create(backbone, resolution, "bottle")
    detector.fit([load_rgb(sample.path) for sample in split.reference])
    return backbone, detector, split


def batch_of(detector, samples) -> tuple[torch.Tensor, np.ndarray]:
    images = torch.stack([detector.preprocess(load_rgb(sample.path)) for sample in samples])
    return images, np.array([sample.label for sample in samples])


def both_classes(samples, count: int) -> list:
    """``count`` samples spread over the list, half of them normal and half anomalous."""
    picked = []
    for label, wanted in ((0, count // 2), (1, count - count // 2)):
        of_label = [sample for sample in samples if sample.label == label]
        picked += of_label[:: max(1, len(of_label) // max(wanted, 1))][:wanted]
    return picked


def best_seconds(function, repeats: int) -> tuple[float, object]:
    """Fastest wall time of ``repeats`` runs (the run least disturbed by other work) and the last result."""
    runs, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        runs.append(time.perf_counter() - started)
    return min(runs), result


def make_target(backbone, detector, surrogate, clean, images: torch.Tensor, labels: np.ndarray) -> AttackTarget:
    """The target the engine would build for this batch, members computed on demand (for ``worstcase``)."""
    registry = get_registry()

    def score(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.as_tensor(detector.score(backbone(x)).scores)

    def member(spec: str) -> Perturbed:
        name, argument = parse_spec(spec)
        component = registry.get("attack", name)
        adversarial = component.create(**component.spec_options(argument)).perturb(target)
        with torch.no_grad():
            return Perturbed(adversarial, detector.score(backbone(adversarial)))

    z_model = surrogate.logit_model(clean)
    target = AttackTarget(images=images, labels=torch.as_tensor(labels), eps=EPS, seeds=list(range(len(labels))),
                          model=ChunkedLogits(same_model(z_model), ZeroGradients()).eval(), score=score,
                          score_from_logit=getattr(z_model, "score_of", None), member=member)
    return target


def clean_batches(backbone_name: str, resolution: int, count: int, data_root: Path) -> tuple:
    """The backbone and the detector fitted on bottle's reference images, the calib labels, ``count`` eval images of
    both classes with their labels, and the clean calib features, calib scores and eval output."""
    backbone, detector, split = prepare(backbone_name, resolution, data_root)
    calib, calib_labels = batch_of(detector, split.calib)
    evaluation, labels = batch_of(detector, both_classes(split.eval, count))
    with torch.no_grad():
        calib_features = backbone(calib)
        calib_scores = detector.score(calib_features).scores
        clean = detector.score(backbone(evaluation))
    return backbone, detector, calib_labels, evaluation, labels, calib_features, calib_scores, clean


def speed(backbone_name: str, resolution: int, count: int, repeats: int, surrogates: list[str],
          attacks: list[str], data_root: Path) -> None:
    """Each attack is timed right after its own clean pass, so a ratio compares runs under the same machine load."""
    backbone, detector, calib_labels, evaluation, labels, calib_features, calib_scores, clean = clean_batches(
        backbone_name, resolution, count, data_root)
    registry = get_registry()
    per_image = [Features(calib_features.patch_tokens[i:i + 1], calib_features.global_token[i:i + 1])
                 for i in range(len(calib_labels))]  # what the engine hands a surrogate's fit

    def clean_pass() -> None:
        with torch.no_grad():
            detector.score(backbone(evaluation))

    clean_pass()  # warm-up: the first passes allocate and are several times slower

    table = Table(title=f"attack cost, bottle, {backbone_name}@{resolution}, {len(evaluation)} images, "
                        f"eps 8/255, {torch.get_num_threads()} threads, best of {repeats}")
    for column in ("surrogate", "attack", "settings", "clean pass s / image", "attack s / image", "x clean pass",
                   "normal score up", "anomalous score down"):
        table.add_column(column, justify="right")
    costs: dict[tuple[str, str], float] = {}
    for surrogate_name in surrogates:
        surrogate = registry.get("surrogate", surrogate_name).create()
        surrogate.fit(backbone, detector, per_image, calib_labels, calib_scores)
        target = make_target(backbone, detector, surrogate, clean, evaluation, labels)
        for attack_name in attacks:
            attack = registry.get("attack", attack_name).create()
            clean_seconds = best_seconds(clean_pass, max(repeats, 3))[0] / len(evaluation)
            seconds, result = best_seconds(lambda: attack.perturb(target), repeats)
            seconds /= len(evaluation)
            costs[surrogate_name, attack_name] = seconds / clean_seconds
            if isinstance(result, Perturbed):
                scores = np.asarray(result.output.scores)
            else:
                with torch.no_grad():
                    scores = detector.score(backbone(result)).scores
            up = float(np.mean(scores[labels == 0] - clean.scores[labels == 0]))
            down = float(np.mean(clean.scores[labels == 1] - scores[labels == 1]))
            settings = ", ".join(f"{k}={v}" for k, v in attack.describe(EPS).items() if k != "alpha")
            table.add_row(surrogate_name, attack_name, settings, f"{clean_seconds:.3f}", f"{seconds:.3f}",
                          f"{seconds / clean_seconds:.1f}", f"{up:+.4f}", f"{down:+.4f}")
    Console(width=200).print(table)
    for (surrogate_name, attack_name), cost in costs.items():
        ratios = [f"{cost / costs[surrogate_name, base]:.1f} x {base}" for base in ("pgd", "worstcase")
                  if (surrogate_name, base) in costs and base != attack_name]
        print(f"{surrogate_name} {attack_name}: {cost:.1f} x clean pass" + "".join(f", {r}" for r in ratios))


def memory_child(batch: int, data_root: Path) -> None:
    """One PGD step through the score surrogate with DINOv2 ViT-S/14 (random weights) at 448; print peak RSS."""
    backbone, detector, split = prepare("dinov2_vits14", 448, data_root, weights="random")
    registry = get_registry()
    images, labels = batch_of(detector, (split.eval * batch)[:batch])
    with torch.no_grad():
        clean = detector.score(backbone(images))
    surrogate = registry.get("surrogate", "score").create()
    surrogate.fit(backbone, detector, None, np.array([0, 1]), np.array([0.1, 0.2]))
    z_model = surrogate.logit_model(clean)
    target = AttackTarget(images=images, labels=torch.as_tensor(labels), eps=EPS, seeds=list(range(batch)),
                          model=ChunkedLogits(same_model(z_model), ZeroGradients()).eval(), score=None,
                          score_from_logit=getattr(z_model, "score_of", None))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    attack = registry.get("attack", "pgd").create(steps=1)
    seconds = best_seconds(lambda: attack.perturb(target), 1)[0]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{batch} {before / 2**20:.2f} {peak / 2**20:.2f} {seconds:.1f}")


def memory(batches: list[int], data_root: Path) -> None:
    table = Table(title="peak RSS of one score-surrogate PGD step, DINOv2 ViT-S/14 (random weights) at 448, bottle")
    for column in ("batch", "RSS before attack GiB", "peak RSS GiB", "GiB / image", "step s"):
        table.add_column(column, justify="right")
    for batch in batches:
        result = subprocess.run([sys.executable, __file__, "--memory-child", str(batch), "--data", str(data_root)],
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
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per row; the fastest is kept")
    parser.add_argument("--surrogates", default="score", help="comma-separated: score, linear")
    parser.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated attack names")
    parser.add_argument("--data", type=Path, default=None,
                        help="MVTec AD root holding bottle/ (default: $ROBUSTAD_TEST_DATA)")
    parser.add_argument("--memory", action="store_true", help="measure peak memory instead of speed")
    parser.add_argument("--batches", default="1,4,8,16", help="batch sizes for --memory")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--radius", action="store_true", help="time the radius search against PGD-10 instead")
    args = parser.parse_args()
    args.data = mvtec_root(args.data)
    if args.memory_child:
        memory_child(args.memory_child, args.data)
    elif args.memory:
        memory([int(b) for b in args.batches.split(",")], args.data)
    elif args.radius:
        radius_cost(args.backbone, args.resolution, args.images, args.data)
    else:
        speed(args.backbone, args.resolution, args.images, args.repeats, args.surrogates.split(","),
              args.attacks.split(","), args.data)



def radius_cost(backbone_name: str, resolution: int, count: int, data_root: Path) -> None:
    """The radius search (``robustad.radius``) against one fixed-eps PGD-10 run on the same images through the
    white-box ``score`` surrogate, each timed right after a clean pass, for both norms; the decision threshold is
    the calib F1-optimal one, as rows of ``bench --radius`` take it (``engine.radii``)."""
    from robustad.metrics import f1_optimal_threshold
    from robustad.radius import median_radius, search

    backbone, detector, calib_labels, evaluation, labels, calib_features, calib_scores, clean = clean_batches(
        backbone_name, resolution, count, data_root)
    registry = get_registry()
    threshold = f1_optimal_threshold(calib_labels, np.asarray(calib_scores))
    surrogate = registry.get("surrogate", "score").create()
    surrogate.fit(backbone, detector, None, calib_labels, calib_scores)
    target = make_target(backbone, detector, surrogate, clean, evaluation, labels)
    table = Table(title=f"radius search against PGD-10 at eps_max, bottle, {backbone_name}@{resolution}, "
                        f"{len(evaluation)} images, score surrogate, {torch.get_num_threads()} threads")
    for column in ("norm", "eps_max", "PGD-10 s", "search s", "x PGD-10", "gradient steps", "tolerance",
                   "median radius [95 %]", "censored"):
        table.add_column(column, justify="right")
    for norm, eps_max in (("linf", EPS), ("l2", 1.0)):
        norm_target = AttackTarget(**{**target.__dict__, "eps": eps_max, "norm": norm})
        pgd = registry.get("attack", "pgd").create()
        pgd_seconds = best_seconds(lambda: pgd.perturb(norm_target), 1)[0]
        seconds, found = best_seconds(lambda: search(target.model, target.score, evaluation, torch.as_tensor(labels),
                                                     threshold, norm=norm, eps_max=eps_max), 1)
        median, low, high = median_radius(found.radii)
        scale = 255 if norm == "linf" else 1
        unit = "/255" if norm == "linf" else ""
        print(f"{norm}: PGD-10 {pgd_seconds:.1f} s, search {seconds:.1f} s ({seconds / pgd_seconds:.2f} x), radii "
              f"{np.round(found.radii * scale, 3).tolist()}{unit}", flush=True)  # a long run shows progress
        table.add_row(norm, f"{eps_max * scale:g}{unit}", f"{pgd_seconds:.1f}", f"{seconds:.1f}",
                      f"{seconds / pgd_seconds:.2f}", str(found.gradient_steps),
                      f"{found.tolerance * scale:.3g}{unit}",
                      f"{median * scale:.3g} [{low * scale:.3g}, {high * scale:.3g}]{unit}",
                      f"{int(np.isinf(found.radii).sum())} of {found.radii.size}")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
