"""The surrogates (linear, score) checked against sklearn and brute force, and the attack end to end on bottle."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from robustad_plugins.anomalydino import AnomalyDINO
from robustad_plugins.linear_surrogate import LinearSurrogate
from robustad_plugins.score_surrogate import ScoreSurrogate
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from robustad.errors import RobustadError
from robustad.kit.threat import two_logit
from robustad.plugins import get_registry
from robustad.records import DetectorOutput, Features
from tests.conftest import LoudBackbone


def synthetic_images(count: int, anomalous: bool, seed: int, size: int = 32) -> torch.Tensor:
    """Smooth stripes (normal) and the same with a bright square blotch (anomalous), in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, size)
    base = (0.5 + 0.3 * torch.sin(6 * ramp)[None, :] * torch.ones(size, 1)).expand(count, 3, size, size).clone()
    images = (base + 0.05 * torch.randn(count, 3, size, size, generator=generator)).clamp(0, 1)
    if anomalous:
        for image in images:
            row, col = torch.randint(0, size - 8, (2,), generator=generator).tolist()
            image[:, row:row + 8, col:col + 8] = torch.rand(3, 1, 1, generator=generator)
    return images


def labelled_set(normal: int, anomalous: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    images = torch.cat([synthetic_images(normal, False, seed), synthetic_images(anomalous, True, seed + 1)])
    return images, np.array([0] * normal + [1] * anomalous)


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    return [Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)) for image in images]


@pytest.fixture
def fitted_detector(tiny_backbone) -> AnomalyDINO:
    detector = AnomalyDINO(tiny_backbone, 32, "bottle", augment="none")
    detector.fit(to_pil(synthetic_images(2, False, seed=100)))
    return detector


def per_image(features: Features) -> list[Features]:
    """What the engine hands a surrogate's ``fit``: one ``Features`` (batch of one) per calib image."""
    return [Features(features.patch_tokens[i:i + 1], features.global_token[i:i + 1])
            for i in range(features.patch_tokens.shape[0])]


def signed_gradient_steps(model: torch.nn.Module, images: torch.Tensor, labels: np.ndarray, eps: float,
                          steps: int) -> torch.Tensor:
    """Iterative FGSM written out here (step eps/steps, no random start): what the surrogate's gradient does,
    independent of the attack plugins."""
    targets = torch.as_tensor(labels)
    adversarial = images.clone()
    for _ in range(steps):
        adversarial.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(two_logit(model(adversarial)), targets)
        (gradient,) = torch.autograd.grad(loss, adversarial)
        step = adversarial.detach() + eps / steps * gradient.sign()
        adversarial = torch.min(torch.max(step, images - eps), images + eps).clamp(0, 1)
    return adversarial.detach()


def brute_force_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """Midway between the lowest calib score t maximising F1 of the rule score >= t (found by trying every
    score) and the next lower calib score; t itself when it is the lowest."""
    candidates = np.unique(scores)
    f1s = [f1_score(labels, (scores >= t).astype(int)) for t in candidates]
    best = int(np.argmax(f1s))
    return float(candidates[best] if best == 0 else (candidates[best - 1] + candidates[best]) / 2)


def test_linear_logits_match_sklearn_decision_function(tiny_backbone):
    calib, labels = labelled_set(6, 6, seed=0)
    evaluation, _ = labelled_set(3, 3, seed=10)
    with torch.no_grad():
        calib_features = tiny_backbone(calib)
        eval_features = tiny_backbone(evaluation)
    surrogate = LinearSurrogate(C=0.5)
    rng_state = torch.get_rng_state()
    surrogate.fit(tiny_backbone, None, per_image(calib_features), labels, np.zeros(len(labels)))
    assert torch.equal(torch.get_rng_state(), rng_state)  # fitting draws nothing from torch's global RNG
    with torch.no_grad():
        z = surrogate.logit_model(DetectorOutput(np.zeros(6), np.zeros((6, 8, 8)))).forward(evaluation).numpy()

    def descriptor(features: Features) -> np.ndarray:
        tokens = features.patch_tokens.double().numpy()
        return np.concatenate([features.global_token.double().numpy(), tokens.mean(axis=(1, 2))], axis=1)

    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=1000))
    expected = pipeline.fit(descriptor(calib_features), labels).decision_function(descriptor(eval_features))
    assert z.shape == (6,)
    np.testing.assert_allclose(z, expected, rtol=1e-4, atol=1e-4)


def test_linear_fit_takes_calib_images_of_different_sizes(tiny_backbone):
    """One descriptor per image, whatever its patch grid: the fitted head equals sklearn's on those descriptors."""
    sizes = [32, 24, 40, 32, 28, 36, 44, 32]
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    images = [synthetic_images(1, bool(label), seed=30 + i, size=size) for i, (label, size) in
              enumerate(zip(labels, sizes))]
    with torch.no_grad():
        features = [tiny_backbone(image) for image in images]
    surrogate = LinearSurrogate()
    surrogate.fit(tiny_backbone, None, features, labels, np.zeros(len(labels)))
    descriptors = np.stack([np.concatenate([f.global_token[0].double().numpy(),
                                            f.patch_tokens[0].double().numpy().mean(axis=(0, 1))]) for f in features])
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)).fit(descriptors, labels)
    with torch.no_grad():
        z = np.array([surrogate.logit_model(None)(image).item() for image in images])
    np.testing.assert_allclose(z, pipeline.decision_function(descriptors), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("features, message", [("one Features", "non-empty list of Features"),
                                               ("empty", "non-empty list of Features"),
                                               ("three images", "3 calib images in the features but 4 labels")])
def test_linear_fit_rejects_features_that_are_not_one_per_image(tiny_backbone, features, message):
    with torch.no_grad():
        batch = tiny_backbone(synthetic_images(4, False, seed=0))
    given = {"one Features": batch, "empty": [], "three images": per_image(batch)[:3]}[features]
    with pytest.raises(RobustadError, match=message) as caught:
        LinearSurrogate().fit(tiny_backbone, None, given, np.array([0, 1, 0, 1]), np.zeros(4))
    assert "\n" not in str(caught.value)


def test_score_logit_is_detector_score_minus_f1_threshold_over_the_calib_spread(tiny_backbone, fitted_detector):
    calib, labels = labelled_set(5, 5, seed=0)
    with torch.no_grad():
        calib_features = tiny_backbone(calib)
    calib_scores = fitted_detector.score(calib_features).scores
    surrogate = ScoreSurrogate()
    surrogate.fit(tiny_backbone, fitted_detector, per_image(calib_features), labels, calib_scores)
    tau = brute_force_f1_threshold(labels, calib_scores)
    assert surrogate.tau == pytest.approx(tau)

    evaluation, _ = labelled_set(2, 2, seed=10)
    with torch.no_grad():
        clean = fitted_detector.score(tiny_backbone(evaluation))
        z = surrogate.logit_model(clean)(evaluation).numpy()
    spread = float(np.sqrt(np.mean((calib_scores - np.mean(calib_scores)) ** 2)))  # population std, by hand
    assert surrogate.scale == pytest.approx(spread)
    np.testing.assert_allclose(z, (clean.scores - tau) / spread, atol=1e-5)


class RecordingDetector:
    """Score = mean patch token; records the masks each differentiable call receives."""

    def __init__(self) -> None:
        self.masks_seen: list = []

    def score_tensor(self, features: Features, masks: torch.Tensor | None) -> torch.Tensor:
        self.masks_seen.append(masks)
        return features.patch_tokens.mean(dim=(1, 2, 3))


@pytest.mark.parametrize("mode", ["live", "frozen"])
def test_score_surrogate_masks_are_recomputed_at_every_step_or_frozen(tiny_backbone, mode):
    images, labels = labelled_set(2, 2, seed=0)
    detector = RecordingDetector()
    surrogate = ScoreSurrogate(masks=mode)
    surrogate.fit(tiny_backbone, detector, per_image(tiny_backbone(images)), labels, np.array([0.1, 0.2, 0.3, 0.4]))
    masks = np.random.default_rng(0).random((4, 8, 8)) > 0.5
    clean = DetectorOutput(np.zeros(4), np.zeros((4, 8, 8), np.float32), masks=masks)
    model = surrogate.logit_model(clean)
    signed_gradient_steps(model, images, labels, 4 / 255, steps=3)
    assert len(detector.masks_seen) == 3
    for seen in detector.masks_seen:
        if mode == "live":  # None: the detector computes the masks of the image it is given
            assert seen is None
        else:
            assert isinstance(seen, torch.Tensor) and np.array_equal(seen.numpy(), masks)
    assert hasattr(model, "score_of") is (mode == "live")


def test_bad_mask_mode_is_a_one_line_error():
    with pytest.raises(RobustadError, match="masks='clean'") as caught:
        ScoreSurrogate(masks="clean")
    assert "\n" not in str(caught.value)


def test_live_logit_gives_the_real_score_of_perturbed_images_whose_masks_moved(tiny_backbone):
    """Masking on: score_of(z) is the detector's own score of the perturbed image, with the masks it recomputes;
    the frozen logit (clean masks) is not that score, so it offers no score_of."""
    backbone = LoudBackbone(tiny_backbone)
    detector = AnomalyDINO(backbone, 32, "bottle", augment="none", masking="on")
    detector.fit(to_pil(synthetic_images(2, False, seed=100)))
    calib, calib_labels = labelled_set(4, 4, seed=0)
    with torch.no_grad():
        calib_features = backbone(calib)
    calib_scores = detector.score(calib_features).scores
    images, labels = labelled_set(3, 3, seed=20)
    with torch.no_grad():
        clean = detector.score(backbone(images))
    perturbed = (images + 0.1 * torch.randn(images.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    with torch.no_grad():
        truth = detector.score(backbone(perturbed))
    moved = [not np.array_equal(a, b) for a, b in zip(truth.masks, clean.masks)]
    assert sum(moved) >= 3  # the perturbation moves the masks of most images

    scores = {}
    for mode in ("live", "frozen"):
        surrogate = ScoreSurrogate(masks=mode)
        surrogate.fit(backbone, detector, per_image(calib_features), calib_labels, calib_scores)
        model = surrogate.logit_model(clean)
        with torch.no_grad():
            z = model(perturbed)
        scores[mode] = z * surrogate.scale + surrogate.tau
        if mode == "live":
            np.testing.assert_allclose(model.score_of(z).numpy(), truth.scores, atol=1e-5)
        else:
            assert not hasattr(model, "score_of")
    np.testing.assert_allclose(scores["live"].numpy(), truth.scores, atol=1e-5)
    assert np.abs(scores["frozen"].numpy() - truth.scores)[moved].max() > 1e-3  # frozen masks: not the real score


def test_frozen_logit_without_masks_is_the_real_score(tiny_backbone, fitted_detector):
    """Masking off: nothing to freeze, so z + tau is the real score and score_of is offered."""
    images, labels = labelled_set(2, 2, seed=5)
    with torch.no_grad():
        clean = fitted_detector.score(tiny_backbone(images))
    surrogate = ScoreSurrogate(masks="frozen")
    surrogate.fit(tiny_backbone, fitted_detector, per_image(tiny_backbone(images)), labels, clean.scores)
    model = surrogate.logit_model(clean)
    with torch.no_grad():
        np.testing.assert_allclose(model.score_of(model(images)).numpy(), clean.scores, atol=1e-5)


def test_importing_the_surrogates_imports_no_heavy_library():
    code = ("import sys, robustad_plugins.score_surrogate, robustad_plugins.linear_surrogate; "
            "print(sorted({'torch', 'sklearn', 'faiss'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("surrogate_cls", [LinearSurrogate, ScoreSurrogate])
def test_two_logit_gradient_of_each_surrogate_is_nonzero(surrogate_cls, tiny_backbone, fitted_detector):
    images, labels = labelled_set(4, 4, seed=0)
    with torch.no_grad():
        features = tiny_backbone(images)
        clean = fitted_detector.score(features)
    surrogate = surrogate_cls()
    surrogate.fit(tiny_backbone, fitted_detector, per_image(features), labels, clean.scores)
    x = images.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(two_logit(surrogate.logit_model(clean)(x)), torch.as_tensor(labels))
    (gradient,) = torch.autograd.grad(loss, x)
    assert (gradient.abs().flatten(1).sum(dim=1) > 0).all()


def test_a_signed_gradient_step_on_the_score_surrogate_moves_every_score_the_adversarial_way(tiny_backbone,
                                                                                              fitted_detector):
    calib, calib_labels = labelled_set(4, 4, seed=0)
    evaluation, labels = labelled_set(5, 5, seed=20)
    with torch.no_grad():
        calib_features = tiny_backbone(calib)
        clean = fitted_detector.score(tiny_backbone(evaluation))
    surrogate = ScoreSurrogate()
    surrogate.fit(tiny_backbone, fitted_detector, per_image(calib_features), calib_labels,
                  fitted_detector.score(calib_features).scores)
    adversarial = signed_gradient_steps(surrogate.logit_model(clean), evaluation, labels, 2 / 255, steps=1)
    with torch.no_grad():
        after = fitted_detector.score(tiny_backbone(adversarial)).scores
    assert (after[labels == 0] > clean.scores[labels == 0]).all()
    assert (after[labels == 1] < clean.scores[labels == 1]).all()


@pytest.mark.parametrize("surrogate_cls", [LinearSurrogate, ScoreSurrogate])
@pytest.mark.parametrize("labels", [[0, 0, 0], [1, 1]])
def test_fit_on_one_class_is_a_one_line_error(surrogate_cls, labels, tiny_backbone):
    images = synthetic_images(len(labels), False, seed=0)
    with pytest.raises(RobustadError) as caught:
        surrogate_cls().fit(tiny_backbone, None, per_image(tiny_backbone(images)), np.array(labels),
                            np.arange(len(labels)) / 10)
    assert f"only class {labels[0]}" in str(caught.value) and "\n" not in str(caught.value)


def test_registry_lists_the_surrogates():
    surrogates = get_registry().components("surrogate")
    assert surrogates["linear"].cls.white_box is False and surrogates["score"].cls.white_box is True
    assert [o.name for o in surrogates["linear"].options] == ["C", "max_iter"]
    assert [(o.name, o.default) for o in surrogates["score"].options] == [("masks", "live")]


@pytest.mark.integration
def test_score_surrogate_attack_on_masked_bottle_with_efficientnet_lite0(mvtec_root: Path):
    """1-shot seed 0 on real bottle images at 128 px with masking forced on: one signed-gradient step of 8/255 with
    live masks costs > 0.05 eval AUROC, five steps cost at least as much, and score_of(z) is the detector's real
    score of the adversarial images, whose masks differ from the clean ones."""
    from robustad.engine.splits import make_split

    started = time.perf_counter()
    registry = get_registry()
    data = registry.get("dataset", "mvtec").create().load(mvtec_root, "bottle")
    split = make_split(data, shots=1, seed=0)
    backbone = registry.get("backbone", "efficientnet_lite0").create()
    detector = registry.get("detector", "anomalydino").create(backbone, 128, "bottle", masking="on")
    detector.fit([Image.open(sample.path).convert("RGB") for sample in split.reference])

    def load(samples):
        images = torch.stack([detector.preprocess(Image.open(s.path).convert("RGB")) for s in samples])
        return images, np.array([s.label for s in samples])

    calib, calib_labels = load(split.calib)
    evaluation, labels = load(split.eval)
    with torch.no_grad():
        calib_features = backbone(calib)
        clean = detector.score(backbone(evaluation))
    surrogate = ScoreSurrogate()
    surrogate.fit(backbone, detector, per_image(calib_features), calib_labels, detector.score(calib_features).scores)
    model = surrogate.logit_model(clean)

    aurocs = {}
    for steps in (1, 5):
        adversarial = signed_gradient_steps(model, evaluation, labels, 8 / 255, steps)
        with torch.no_grad():
            z = model(adversarial)
            truth = detector.score(backbone(adversarial))
        aurocs[steps] = roc_auc_score(labels, truth.scores)
    np.testing.assert_allclose(model.score_of(z).numpy(), truth.scores, atol=1e-5)
    moved = sum(not np.array_equal(a, b) for a, b in zip(truth.masks, clean.masks))
    clean_auroc = roc_auc_score(labels, clean.scores)
    print(f"bottle eval AUROC clean {clean_auroc:.3f}, 1 step {aurocs[1]:.3f}, 5 steps {aurocs[5]:.3f}; masks moved "
          f"on {moved} of {len(labels)} images ({time.perf_counter() - started:.0f} s)")
    assert moved > 0
    assert clean_auroc - aurocs[1] > 0.05
    assert aurocs[5] <= aurocs[1]
