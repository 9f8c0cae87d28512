"""The surrogates (linear, score) checked against sklearn and brute force, and the attack end to end on bottle."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from robustad.contracts import AttackTarget
from robustad.errors import RobustadError
from robustad.plugins import get_registry
from robustad.records import DetectorOutput, Features
from robustad.kit.threat import TwoLogit, parse_eps
from robustad_plugins.anomalydino import AnomalyDINO
from robustad_plugins.linear_surrogate import LinearSurrogate
from robustad_plugins.score_surrogate import ScoreSurrogate
from robustad_plugins.attacks import FGSM, PGD, Noise


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


def surrogate_target(surrogate, clean: DetectorOutput, images: torch.Tensor, labels: np.ndarray, eps: float,
                     score=None) -> AttackTarget:
    """What the engine hands an attack: the surrogate's two logits on the batch, and the real score (by default the
    score surrogate's z + tau, exact where the detector masks nothing)."""
    model = TwoLogit(surrogate.logit_model(clean)).eval()
    return AttackTarget(images=images, labels=torch.as_tensor(labels), eps=eps, seeds=list(range(len(labels))),
                        model=model, score=score, score_from_logit=None if score else (lambda z: z + surrogate.tau))


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    return [Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)) for image in images]


@pytest.fixture
def fitted_detector(tiny_backbone) -> AnomalyDINO:
    detector = AnomalyDINO(tiny_backbone, 32, "bottle", augment="none")
    detector.fit(to_pil(synthetic_images(2, False, seed=100)))
    return detector


def brute_force_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The lowest calib score t maximising F1 of the rule score >= t, by trying every score."""
    candidates = np.unique(scores)
    f1s = [f1_score(labels, (scores >= t).astype(int)) for t in candidates]
    return float(candidates[int(np.argmax(f1s))])


def test_linear_logits_match_sklearn_decision_function(tiny_backbone):
    calib, labels = labelled_set(6, 6, seed=0)
    evaluation, _ = labelled_set(3, 3, seed=10)
    with torch.no_grad():
        calib_features = tiny_backbone(calib)
        eval_features = tiny_backbone(evaluation)
    surrogate = LinearSurrogate(C=0.5)
    rng_state = torch.get_rng_state()
    surrogate.fit(tiny_backbone, None, calib_features, labels, np.zeros(len(labels)))
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


def test_score_logit_is_detector_score_minus_f1_threshold(tiny_backbone, fitted_detector):
    calib, labels = labelled_set(5, 5, seed=0)
    with torch.no_grad():
        calib_features = tiny_backbone(calib)
    calib_scores = fitted_detector.score(calib_features).scores
    surrogate = ScoreSurrogate()
    surrogate.fit(tiny_backbone, fitted_detector, calib_features, labels, calib_scores)
    tau = brute_force_f1_threshold(labels, calib_scores)
    assert surrogate.tau == pytest.approx(tau)

    evaluation, _ = labelled_set(2, 2, seed=10)
    with torch.no_grad():
        clean = fitted_detector.score(tiny_backbone(evaluation))
        z = surrogate.logit_model(clean)(evaluation).numpy()
    np.testing.assert_allclose(z, clean.scores - tau, atol=1e-5)


class RecordingDetector:
    """Score = mean patch token; records the masks each differentiable call receives."""

    def __init__(self) -> None:
        self.masks_seen: list = []

    def score_tensor(self, features: Features, masks: torch.Tensor | None) -> torch.Tensor:
        self.masks_seen.append(masks)
        return features.patch_tokens.mean(dim=(1, 2, 3))


def test_score_surrogate_freezes_the_clean_masks_through_the_attack(tiny_backbone):
    images, labels = labelled_set(2, 2, seed=0)
    detector = RecordingDetector()
    surrogate = ScoreSurrogate()
    surrogate.fit(tiny_backbone, detector, tiny_backbone(images), labels, np.array([0.1, 0.2, 0.3, 0.4]))
    masks = np.random.default_rng(0).random((4, 8, 8)) > 0.5
    clean = DetectorOutput(np.zeros(4), np.zeros((4, 8, 8), np.float32), masks=masks)
    PGD(steps=3).perturb(surrogate_target(surrogate, clean, images, labels, 4 / 255))
    assert len(detector.masks_seen) == 4  # three gradient passes, one forward to judge the last iterate
    for seen in detector.masks_seen:
        assert isinstance(seen, torch.Tensor) and np.array_equal(seen.numpy(), masks)


@pytest.mark.parametrize("surrogate_cls", [LinearSurrogate, ScoreSurrogate])
def test_two_logit_gradient_of_each_surrogate_is_nonzero(surrogate_cls, tiny_backbone, fitted_detector):
    images, labels = labelled_set(4, 4, seed=0)
    with torch.no_grad():
        features = tiny_backbone(images)
        clean = fitted_detector.score(features)
    surrogate = surrogate_cls()
    surrogate.fit(tiny_backbone, fitted_detector, features, labels, clean.scores)
    x = images.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(TwoLogit(surrogate.logit_model(clean))(x), torch.as_tensor(labels))
    (gradient,) = torch.autograd.grad(loss, x)
    assert (gradient.abs().flatten(1).sum(dim=1) > 0).all()


def test_fgsm_with_the_score_surrogate_moves_every_score_the_adversarial_way(tiny_backbone, fitted_detector):
    calib, calib_labels = labelled_set(4, 4, seed=0)
    evaluation, labels = labelled_set(5, 5, seed=20)
    with torch.no_grad():
        calib_features = tiny_backbone(calib)
        clean = fitted_detector.score(tiny_backbone(evaluation))
    surrogate = ScoreSurrogate()
    surrogate.fit(tiny_backbone, fitted_detector, calib_features, calib_labels,
                  fitted_detector.score(calib_features).scores)
    adversarial = FGSM().perturb(surrogate_target(surrogate, clean, evaluation, labels, 2 / 255))
    with torch.no_grad():
        after = fitted_detector.score(tiny_backbone(adversarial)).scores
    assert (after[labels == 0] > clean.scores[labels == 0]).all()
    assert (after[labels == 1] < clean.scores[labels == 1]).all()


@pytest.mark.parametrize("surrogate_cls", [LinearSurrogate, ScoreSurrogate])
@pytest.mark.parametrize("labels", [[0, 0, 0], [1, 1]])
def test_fit_on_one_class_is_a_one_line_error(surrogate_cls, labels, tiny_backbone):
    images = synthetic_images(len(labels), False, seed=0)
    with pytest.raises(RobustadError) as caught:
        surrogate_cls().fit(tiny_backbone, None, tiny_backbone(images), np.array(labels), np.arange(len(labels)) / 10)
    assert f"only class {labels[0]}" in str(caught.value) and "\n" not in str(caught.value)


def test_registry_lists_the_surrogates():
    surrogates = get_registry().components("surrogate")
    assert surrogates["linear"].cls.white_box is False and surrogates["score"].cls.white_box is True
    assert [o.name for o in surrogates["linear"].options] == ["C", "max_iter"]
    assert surrogates["score"].options == ()


@pytest.mark.integration
def test_attacks_lower_bottle_auroc_with_efficientnet_lite0(mvtec_root: Path):
    """1-shot seed 0 on real bottle images at 128 px (keeps the test near a minute): FGSM 8/255 through the score
    surrogate costs > 0.05 AUROC, PGD-10 at the same eps at least as much, and both more than the noise control."""
    from robustad.engine.splits import make_split

    started = time.perf_counter()
    registry = get_registry()
    data = registry.get("dataset", "mvtec").create().load(mvtec_root, "bottle")
    split = make_split(data, shots=1, seed=0)
    backbone = registry.get("backbone", "efficientnet_lite0").create()
    detector = registry.get("detector", "anomalydino").create(backbone, 128, "bottle")
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
    surrogate.fit(backbone, detector, calib_features, calib_labels, detector.score(calib_features).scores)
    target = surrogate_target(surrogate, clean, evaluation, labels, parse_eps("8/255"))

    def attacked_auroc(attack) -> float:
        adversarial = attack.perturb(target)
        with torch.no_grad():
            return roc_auc_score(labels, detector.score(backbone(adversarial)).scores)

    clean_auroc = roc_auc_score(labels, clean.scores)
    noise_auroc, fgsm_auroc, pgd_auroc = attacked_auroc(Noise()), attacked_auroc(FGSM()), attacked_auroc(PGD())
    print(f"bottle eval AUROC clean {clean_auroc:.3f}, noise {noise_auroc:.3f}, FGSM {fgsm_auroc:.3f}, "
          f"PGD-10 {pgd_auroc:.3f} ({time.perf_counter() - started:.0f} s)")
    assert clean_auroc - fgsm_auroc > 0.05
    assert pgd_auroc <= fgsm_auroc < noise_auroc
