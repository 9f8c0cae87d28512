"""The detector example of docs/writing-a-plugin.md registers, and scores Mahalanobis distances as numpy does."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustad.components import Component
from tests.conftest import TinyBackbone

GUIDE = Path(__file__).parents[1] / "docs" / "writing-a-plugin.md"


def example_module() -> dict:
    """The guide's python block that registers a detector, executed as a module."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
    [source] = [block for block in blocks if "register_detectors" in block]
    namespace: dict = {"__name__": "robustad_gaussian"}
    exec(compile(source, str(GUIDE), "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace


def test_documented_detector_registers_and_matches_numpy_mahalanobis():
    detector_class = example_module()["GaussianPatches"]
    component = Component.from_class("detector", detector_class, "gaussian", "robustad-gaussian")
    assert [option.name for option in component.options] == ["shrinkage"]
    backbone = TinyBackbone().eval()
    rng = np.random.default_rng(0)
    reference = [Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)) for _ in range(3)]
    detector = component.create(backbone, 32, **component.runtime_keywords(category="bottle", seed=0))
    detector.fit(reference)

    train = np.concatenate([backbone(detector.preprocess(image)[None]).patch_tokens.detach().numpy().reshape(-1, 16)
                            for image in reference]).astype(np.float64)
    covariance = np.cov(train, rowvar=False)
    covariance = 0.99 * covariance + 0.01 * np.trace(covariance) / 16 * np.eye(16)
    features = backbone(torch.stack([detector.preprocess(image) for image in reference[:2]]))
    tokens = features.patch_tokens.detach().numpy().reshape(2, -1, 16) - train.mean(axis=0)
    expected = np.sqrt(np.einsum("bnc,cd,bnd->bn", tokens, np.linalg.inv(covariance), tokens))
    output = detector.score(features)
    assert output.patch_distances.reshape(2, -1) == pytest.approx(expected, rel=1e-6)
    assert output.scores == pytest.approx(expected.max(axis=1), rel=1e-6)
    assert detector.score_tensor(features).detach().numpy() == pytest.approx(output.scores, rel=1e-9)
    assert detector.anomaly_map(output.patch_distances[0], (40, 50)).shape == (40, 50)
