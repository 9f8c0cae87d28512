"""A third-party attack returning tensors the engine cannot use (meta tensors, another dtype, a tensor subclass,
an array) fails its own cells only: the built-in attack beside it in the same threat group keeps its row."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustad import DetectorOutput, Perturbed, hookimpl
from robustad.engine.executors import run_local
from robustad.engine.progress import SilentReporter
from robustad.engine.request import build_cells
from robustad.engine.settings import RunSettings
from robustad.results.leaderboard import read_rows
from tests.test_hostile_rows import data, registry, request  # noqa: F401  (fixtures)


class Loud(torch.Tensor):
    """A tensor subclass whose every operation raises."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        raise RuntimeError("a subclass that raises on every call")


class BadTensors:
    name, description, needs_surrogate = "bad_tensors", "returns what the engine cannot use", False
    KIND = "meta"

    def perturb(self, target):
        images = target.images
        return {
            "meta": lambda: torch.empty_like(images, device="meta"),
            "uint8": lambda: (images * 255).to(torch.uint8),
            "float64": lambda: images.double(),
            "subclass": lambda: images.clone().as_subclass(Loud),
            "array": lambda: images.numpy(),
            "meta scores": lambda: Perturbed(images, DetectorOutput(torch.empty(len(images), device="meta"),
                                                                    np.zeros((len(images), 1, 1)))),
        }[self.KIND]()

    def describe(self, eps):
        return {}


class BadTensorPlugin:
    @hookimpl
    def register_attacks(self, register):
        register(BadTensors)


@pytest.mark.parametrize("kind", ["meta", "uint8", "float64", "subclass", "array", "meta scores"])
def test_bad_tensors_fail_only_the_attacks_own_cells(registry, data, tmp_path, monkeypatch, kind):  # noqa: F811
    if not registry.pm.has_plugin("bad-tensors"):
        registry.add(BadTensorPlugin(), "bad-tensors", "robustad-bad-tensors")
    monkeypatch.setattr(BadTensors, "KIND", kind)
    cells = build_cells(request(data, attack="bad_tensors,fgsm"), registry)
    result = run_local(cells, RunSettings(data_root=data, pixel_metrics=False, resamples=0), tmp_path / "b.csv",
                       registry, SilentReporter(), lambda cell, row: None)
    assert sorted(r["attack"] for r in read_rows(tmp_path / "b.csv")) == ["fgsm"]
    [(_, message)] = result.failures
    assert "attack 'bad_tensors' (plugin 'bad-tensors'" in message and "\n" not in message
