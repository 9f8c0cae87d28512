"""An honest attacker (issue 38): reported scores come from draws no attack has seen, every attack keeps the clean
image where it does not help, and the default loss keeps a gradient whatever the scale of the scores. Checked on
tiny engine runs against brute force and sklearn, never against the engine's own choice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from robustad_plugins.anomalydino import AnomalyDINO
from sklearn.metrics import roc_auc_score

from robustad.hookspecs import hookimpl
from robustad.plugins import get_registry
from robustad.records import DetectorOutput

BELIEVED: dict[str, np.ndarray] = {}  # what the third-party attack saw of its chosen images, by eval path


class BestOfSigns:
    """A third-party attack with no signal: per image, the best of ``tries`` random sign perturbations of eps,
    judged by ``target.score`` (on a randomized defense, one noisy estimate each)."""

    name = "best_of_signs"
    description = "best of random sign perturbations by target.score"
    needs_surrogate = False

    def __init__(self, *, tries: int = 32) -> None:
        self.tries = tries

    def perturb(self, target):
        sign = (1 - 2 * target.labels).double()
        generators = [target.generator(i) for i in range(target.images.shape[0])]
        best, best_key = target.images.clone(), torch.full((target.images.shape[0],), -float("inf"))
        for _ in range(self.tries):
            signs = torch.stack([torch.randint(0, 2, target.images.shape[1:], generator=g) * 2.0 - 1
                                 for g in generators])
            candidate = (target.images + target.eps * signs).clamp(0, 1)
            key = sign * torch.as_tensor(target.score(candidate)).double()
            better = key > best_key
            best = torch.where(better.view(-1, 1, 1, 1), candidate, best)
            best_key = torch.where(better, key, best_key)
        BELIEVED.setdefault("scores", np.zeros(0))
        BELIEVED["scores"] = np.concatenate([BELIEVED["scores"], (sign * best_key).numpy()])
        BELIEVED.setdefault("labels", np.zeros(0))
        BELIEVED["labels"] = np.concatenate([BELIEVED["labels"], target.labels.numpy()])
        return best

    def describe(self, eps):
        return {"steps": 0, "restarts": self.tries}


class LargeScores(AnomalyDINO):
    """AnomalyDINO with every score times 1e4 (SubspaceAD's residuals are of that order)."""

    name = "large_scores"
    description = "anomalydino scores times 1e4"

    def score(self, features):
        output = super().score(features)
        return DetectorOutput(np.asarray(output.scores) * 1e4, np.asarray(output.patch_distances) * 1e4,
                              output.masks, output.extra)

    def score_tensor(self, features, masks=None):
        return super().score_tensor(features, masks) * 1e4


class HonestPlugins:
    @hookimpl
    def register_attacks(self, register):
        register(BestOfSigns)

    @hookimpl
    def register_detectors(self, register):
        register(LargeScores)


def registry():
    from tests.test_engine_faults import FaultyPlugins

    found = get_registry()
    if not found.pm.has_plugin("faulty"):
        found.add(FaultyPlugins(), "faulty", "robustad-faulty")
    if not found.pm.has_plugin("honest"):
        found.add(HonestPlugins(), "honest", "robustad-honest-tests")
    return found


def write(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def dataset(root, count=16):
    """Normal images: a grey level with mild texture; defective ones carry a bright 8x8 square."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 2), ("test", count)):
        for i in range(n):
            base = (100 + rng.integers(-12, 12, (32, 32, 3))).astype(np.uint8)
            write(root / "part" / split / "good" / f"{i:03d}.png", base)
            if split == "test":
                bad = base.copy()
                corner = rng.integers(2, 22, 2)
                bad[corner[0]:corner[0] + 8, corner[1]:corner[1] + 8] = 250
                write(root / "part" / "test" / "bad" / f"{i:03d}.png", bad)
                mask = np.zeros((32, 32), dtype=np.uint8)
                mask[corner[0]:corner[0] + 8, corner[1]:corner[1] + 8] = 255
                write(root / "part" / "ground_truth" / "bad" / f"{i:03d}_mask.png", mask)
    return root


def run(tmp_path, name, resamples=0, **changes):
    from robustad.declaration import Request
    from robustad.engine.executors import run_local
    from robustad.engine.progress import SilentReporter
    from robustad.engine.request import build_cells
    from robustad.engine.settings import RunSettings
    from robustad.results.leaderboard import read_rows

    root = tmp_path / "data"
    if not root.is_dir():
        dataset(root)
    fields = dict(dataset="folder", data_root=root, category="all", shots="1", seeds="0", backbone="tiny_ok",
                  weights="", resolution="32", detector="anomalydino", surrogate="score", attack="noise",
                  eps="8/255", calib="none", calib_fraction=0.3, options=[])
    found = registry()
    cells = build_cells(Request(noise_control=False, **{**fields, **changes}), found)
    out, scores = tmp_path / f"{name}.csv", tmp_path / f"{name}-scores"
    result = run_local(cells, RunSettings(data_root=root, pixel_metrics=False, resamples=resamples,
                                          save_scores=scores), out, found, SilentReporter(), lambda cell, row: None)
    assert not result.failures, result.failures
    rows = read_rows(out)
    return rows, {row["cell_hash"]: pd.read_csv(scores / f"{row['cell_hash']}.csv") for row in rows}


def eval_part(frame):
    return frame[frame["split"] == "eval"].reset_index(drop=True)


def test_the_best_of_32_noisy_estimates_is_reported_on_fresh_draws_within_the_noise_controls_interval(tmp_path):
    BELIEVED.clear()
    # the clean candidate off: it isolates the reporting draws (with it, a pick may also be the clean image)
    rows, scores = run(tmp_path, "smoothing", resamples=200, attack="noise,best_of_signs", defense="smoothing",
                       eps="2/255", options=["defense.smoothing.samples=4", "defense.smoothing.sigma=0.2"],
                       keep_clean=False)
    by_attack = {row["attack"]: row for row in rows}
    noise, chosen = by_attack["noise"], by_attack["best_of_signs"]
    assert chosen["report_draws"] == "16" and noise["report_draws"] == "16"  # max(samples 4, EOT default 16)
    frame = eval_part(scores[chosen["cell_hash"]])
    reported = roc_auc_score(frame["label"], frame["adv_score"])
    assert float(chosen["adv_auroc"]) == pytest.approx(reported)
    # what the attack believed of its picks (the best of 32 estimates on the draws it may query) is far below
    believed = roc_auc_score(BELIEVED["labels"], BELIEVED["scores"])
    low, high = float(noise["adv_auroc_ci_low"]), float(noise["adv_auroc_ci_high"])
    print(f"believed {believed:.3f}, reported {reported:.3f}, noise [{low:.3f}, {high:.3f}], "
          f"clean {float(noise['clean_auroc']):.3f}")
    assert believed < low
    # reported on draws it never saw, its pick is as good as noise
    assert low <= reported <= high


def test_the_clean_image_is_kept_exactly_where_an_attack_does_not_help(tmp_path):
    attacks = "noise,fgsm,pgd:3,square:8,worstcase"
    options = ["attack.worstcase.members=noise+fgsm+pgd:3+square:8"]
    plain, plain_scores = run(tmp_path, "plain", attack=attacks, options=options, keep_clean=False)
    kept, kept_scores = run(tmp_path, "kept", attack=attacks, options=options)
    plain_by = {row["attack"]: plain_scores[row["cell_hash"]] for row in plain}
    kept_by = {row["attack"]: kept_scores[row["cell_hash"]] for row in kept}
    for attack in ("fgsm", "pgd", "square"):
        before, after = eval_part(plain_by[attack]), eval_part(kept_by[attack])
        sign = 1 - 2 * before["label"].to_numpy()
        helped = sign * (before["adv_score"].to_numpy() - before["clean_score"].to_numpy()) > 0
        expected = np.where(helped, before["adv_score"], before["clean_score"])  # brute force, per image
        np.testing.assert_array_equal(after["adv_score"].to_numpy(), expected)
    noise_before, noise_after = eval_part(plain_by["noise"]), eval_part(kept_by["noise"])
    np.testing.assert_array_equal(noise_before["adv_score"], noise_after["adv_score"])  # the control is untouched
    rows = {row["attack"]: row for row in kept}
    clean = float(rows["fgsm"]["clean_auroc"])
    for attack, row in rows.items():
        frame = eval_part(kept_by[attack])
        auroc = roc_auc_score(frame["label"], frame["adv_score"])
        if attack != "noise":
            assert auroc <= clean + 1e-12, attack
        if attack != "worstcase":
            assert roc_auc_score(*_xy(eval_part(kept_by["worstcase"]))) <= auroc + 1e-12, attack
    assert (rows["fgsm"]["keep_clean"], rows["noise"]["protocol"]) == ("True", "2")


def _xy(frame):
    return frame["label"], frame["adv_score"]


def test_scores_on_a_1e4_scale_keep_a_gradient_and_anomalous_images_move(tmp_path, monkeypatch):
    import robustad_plugins.score_surrogate as surrogate

    with monkeypatch.context() as before:  # the logit as it was (unscaled) with cross-entropy: it saturates
        before.setattr(surrogate, "calib_spread", lambda scores: 1.0)
        rows, _ = run(tmp_path, "before", detector="large_scores", attack="pgd:5", options=["attack.pgd.loss=ce"])
        assert float(next(r for r in rows if r["attack"] == "pgd")["zero_grad_share"]) > 0.2
    rows, scores = run(tmp_path, "large", detector="large_scores", attack="pgd:5", eps="8/255")
    row = next(r for r in rows if r["attack"] == "pgd")
    assert float(row["zero_grad_share"]) == 0.0
    frame = eval_part(scores[row["cell_hash"]])
    anomalous = frame[frame["label"] == 1]
    assert anomalous["clean_score"].min() > 100  # the scale is real: unscaled, the ce gradient would underflow
    moved = anomalous["adv_score"] < anomalous["clean_score"]
    assert moved.mean() >= 0.75, anomalous
