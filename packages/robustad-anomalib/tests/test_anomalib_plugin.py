"""robustad-anomalib against anomalib itself: the catalogue against anomalib's classes, scores against anomalib's
own torch model, the white-box gradient against finite differences, and the package as robustad lists it."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from robustad_anomalib.catalogue import FITTED, OTHER, TRAINED, ZERO_SHOT, check_model

from robustad import RobustadError
from robustad.engine.guard import GuardedBackbone
from robustad.engine.handles import Handle
from robustad.engine.own_forward import forward_of
from robustad.kit.weights import seeded_random_init
from robustad.plugins import get_registry

SIZE = 64
VIDEO = {"AiVad", "Fuvas"}


def images(count: int, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (72, 80, 3), dtype=np.uint8)) for _ in range(count)]


def routed(model: str) -> tuple[object, GuardedBackbone]:
    """The plugin's detector behind a guarded backbone whose network slot is its own forward, as the engine sets it."""
    registry = get_registry()
    backbone_component, detector_component = registry.get("backbone", "anomalib"), registry.get("detector", "anomalib")
    network = backbone_component.create(weights="random")
    guarded = GuardedBackbone(network, backbone_component, "fp32", "cpu")
    detector = detector_component.create(guarded, SIZE, category="bottle", model=model)
    guarded.backbone = forward_of(network, Handle(detector_component, detector))
    return detector, guarded


def test_the_catalogue_sorts_every_anomalib_image_model_as_anomalib_does():
    import anomalib.models
    from anomalib.models.components import MemoryBankMixin

    image_models = {name for name in anomalib.models.__all__ if name not in VIDEO}
    listed = [*FITTED, *ZERO_SHOT, *TRAINED, *OTHER]
    assert sorted(listed) == sorted(image_models) and len(set(listed)) == len(listed)
    memory_bank = {name for name in image_models if issubclass(getattr(anomalib.models, name), MemoryBankMixin)}
    assert set(FITTED) == memory_bank - set(OTHER)
    assert not memory_bank & set(TRAINED)


@pytest.mark.parametrize("model", ["stfpm", "Fastflow", "EfficientAd"])
def test_a_model_that_needs_training_is_one_line(model):
    with pytest.raises(RobustadError, match="needs training epochs"):
        check_model(model)


def anomalibs_own_scores(model: str, reference: list[Image.Image], test: list[Image.Image], **options) -> np.ndarray:
    """anomalib alone: the same seeded random network, its pre-processor on the float images, training steps, fit."""
    import anomalib.models

    cls = getattr(anomalib.models, model)
    pre_processor = cls.configure_pre_processor(image_size=(SIZE, SIZE))
    with seeded_random_init():
        theirs = cls(pre_processor=pre_processor, pre_trained=False, **options)

    def prepared(image: Image.Image) -> torch.Tensor:
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
        return pre_processor.transform(pixels)

    theirs.model.train()
    with torch.no_grad():
        theirs.training_step(type("Batch", (), {"image": torch.stack([prepared(i) for i in reference])})())
        theirs.fit()
        theirs.model.eval()
        return theirs.model(torch.stack([prepared(i) for i in test])).pred_score.reshape(-1).numpy()


@pytest.mark.parametrize("model", ["Padim", "Dfm"])
def test_scores_equal_anomalibs_own_torch_model(model):
    detector, guarded = routed(model)
    reference, test = images(3, seed=1), images(2, seed=2)
    detector.fit(reference)
    x = torch.stack([detector.preprocess(image) for image in test])
    output = detector.score(guarded(x))
    np.testing.assert_allclose(output.scores, anomalibs_own_scores(model, reference, test), rtol=1e-4)


def test_dfkde_on_three_images_keeps_two_pca_components_as_an_anomalib_user_would():
    detector, guarded = routed("Dfkde")
    reference, test = images(3, seed=1), images(2, seed=2)
    with pytest.warns(RuntimeWarning, match="3 reference images allow at most 2 PCA components; using 2 instead of 16"):
        detector.fit(reference)
    output = detector.score(guarded(torch.stack([detector.preprocess(image) for image in test])))
    expected = anomalibs_own_scores("Dfkde", reference, test, n_pca_components=2)
    np.testing.assert_allclose(output.scores, expected, rtol=1e-4)
    assert output.patch_distances.shape == (2, 1, 1)  # image-level: the map is the score
    np.testing.assert_array_equal(output.patch_distances[:, 0, 0], output.scores)


def test_dfkde_on_two_images_is_one_line():
    detector, _ = routed("Dfkde")
    with pytest.raises(RobustadError, match="anomalib:Dfkde needs k >= 3 reference images .* got k = 2"):
        detector.fit(images(2, seed=1))


@pytest.mark.parametrize(("model", "shots"), [("Padim", 2), ("Dfkde", 3)])
def test_white_box_gradient_is_the_scores_derivative(model, shots):
    detector, guarded = routed(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # Dfkde's PCA components clamped to k - 1
        detector.fit(images(shots, seed=3))
    x = torch.stack([detector.preprocess(image) for image in images(1, seed=4)])
    x.requires_grad_(True)
    score = detector.score_tensor(guarded(x)).sum()
    (gradient,) = torch.autograd.grad(score, x)
    direction = torch.sign(gradient)
    step = 1e-3
    with torch.no_grad():
        ahead = detector.score_tensor(guarded(x + step * direction)).sum()
        behind = detector.score_tensor(guarded(x - step * direction)).sum()
    finite = (ahead - behind) / (2 * step)
    assert float(gradient.abs().sum()) > 0
    assert float(finite) == pytest.approx(float((gradient * direction).sum()), rel=0.05)


def test_zero_shot_is_refused_for_a_model_that_needs_reference_images():
    detector, _ = routed("Padim")
    with pytest.raises(RobustadError, match="anomalib:Padim needs k >= 1 reference images"):
        detector.fit([])


def test_padim_on_one_reference_image_is_one_line_not_a_nan():
    detector, guarded = routed("Padim")
    detector.fit(images(1, seed=7))  # anomalib's per-patch covariance divides by k - 1
    x = torch.stack([detector.preprocess(image) for image in images(1, seed=8)])
    with pytest.raises(RobustadError, match="anomalib:Padim returned non-finite scores after fitting on 1"):
        guarded(x)


def test_robustad_plugins_lists_the_package_with_its_distribution():
    listing = subprocess.run([sys.executable, "-m", "robustad", "plugins"], capture_output=True, text=True,
                             env={"COLUMNS": "250", "PATH": ""}, check=True).stdout
    rows = [line for line in listing.splitlines() if "robustad-anomalib" in line]
    assert any("backbone" in row and " anomalib " in row for row in rows)
    assert any("detector" in row and " anomalib " in row for row in rows)
