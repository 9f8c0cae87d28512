"""Defenses and the adaptive attacker: the built-ins against independent filters, BPDA's identity gradient, EOT's
averaged gradient, reproducible draws, and declarations that are checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from robustad_plugins.defenses import BitDepth, Blur, GaussianNoise, Median, Smoothing
from scipy import ndimage

from robustad.components import Component
from robustad.engine.adaptive import resolved_bpda, resolved_eot
from robustad.engine.attacking import ChunkedLogits, ZeroGradients, same_model
from robustad.engine.defended import EOT_DRAWS, DefenseStep, draw
from robustad.engine.guard import ComponentError
from robustad.engine.handles import Handle
from robustad.errors import RobustadError
from robustad.plugins import get_registry


def step(name: str, bpda: str = "identity", seed: int = 0, **options) -> DefenseStep:
    component = get_registry().get("defense", name)
    return DefenseStep(Handle.create(component, **options), seed, bpda)


def image(seed: int = 0, size: int = 16) -> torch.Tensor:
    return torch.rand((1, 3, size, size), generator=torch.Generator().manual_seed(seed))


def test_median_and_blur_match_scipy():
    x = image()
    pixels = x[0].numpy()
    median = Median(kernel=3).transform(x, None)[0].numpy()
    assert np.allclose(median, np.stack([ndimage.median_filter(c, size=3, mode="mirror") for c in pixels]))
    blurred = Blur(sigma=1.0).transform(x, None)[0].numpy()
    expected = np.stack([ndimage.gaussian_filter(c, sigma=1.0, mode="mirror", truncate=3.0) for c in pixels])
    assert np.allclose(blurred, expected, atol=1e-5)


def test_bitdepth_rounds_to_the_grid_of_its_bits():
    x = image()
    out = BitDepth(bits=2).transform(x, None).numpy()
    assert np.array_equal(out, np.round(x.numpy() * 3) / 3) and len(np.unique(out)) <= 4


@pytest.mark.parametrize("name, options", [("jpeg", {"quality": 50}), ("bitdepth", {"bits": 3})])
def test_bpda_gives_the_identity_gradient_through_non_differentiable_defenses(name, options):
    x = image().requires_grad_(True)
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    defended = step(name, **options)(x)
    assert not torch.equal(defended.detach(), x.detach())  # the forward pass is the defense ...
    (defended * weights).sum().backward()
    assert torch.equal(x.grad, weights)  # ... the backward pass the identity
    naive = x.detach().clone().requires_grad_(True)
    (step(name, bpda="off", **options)(naive) * weights).sum().backward()
    assert torch.count_nonzero(naive.grad) == 0  # without BPDA nothing flows back


def test_a_differentiable_defense_keeps_its_own_gradient():
    x = image().requires_grad_(True)
    step("blur", bpda="none", sigma=1.0)(x).sum().backward()
    reference = image().requires_grad_(True)
    Blur(sigma=1.0).transform(reference, None).sum().backward()
    assert torch.allclose(x.grad, reference.grad)


def test_eot_gradient_is_the_mean_of_the_per_draw_gradients():
    noise = step("gaussian", bpda="none", sigma=0.2, samples=1)
    weights = torch.randn((1, 3, 16, 16), generator=torch.Generator().manual_seed(2))

    def z_model(x):
        return (torch.tanh(noise(x) * 3) * weights).sum(dim=(1, 2, 3))

    x = image().requires_grad_(True)
    model = ChunkedLogits(same_model(z_model), ZeroGradients(), eot=5)
    logits = model(x)
    logits[:, 1].sum().backward()  # the second logit is +z/2
    per_draw = []
    for number in range(5):
        single = image().requires_grad_(True)
        with draw(EOT_DRAWS + number):
            (z_model(single) / 2).sum().backward()
        per_draw.append(single.grad)
    assert torch.allclose(x.grad, torch.stack(per_draw).mean(dim=0), atol=1e-6)
    assert not torch.allclose(per_draw[0], per_draw[1])  # the draws differ, so the mean is not one draw


def test_random_draws_depend_on_content_seed_and_draw_only():
    noise = step("gaussian", bpda="none", sigma=0.1)
    x = image()
    with draw(3):
        first, again = noise(x), noise(x.clone())
    with draw(4):
        other_draw = noise(x)
    assert torch.equal(first, again) and not torch.equal(first, other_draw)
    assert not torch.equal(step("gaussian", bpda="none", seed=1, sigma=0.1)(x), noise(x))


def test_smoothing_and_gaussian_declare_how_their_draws_combine():
    assert (Smoothing.aggregate, GaussianNoise.aggregate) == ("median", "mean")
    assert step("smoothing", bpda="none", samples=7).samples == 7 and step("jpeg").samples == 1


def test_adaptive_settings_follow_the_declarations():
    assert resolved_bpda("auto", differentiable=False) == "identity"
    assert resolved_bpda("off", differentiable=False) == "off"
    assert resolved_bpda("off", differentiable=True) == "none"
    assert resolved_eot(None, randomized=True) > 1 and resolved_eot(3, randomized=True) == 3
    assert resolved_eot(20, randomized=False) == 1


class Liar:
    """Declares differentiable but hands back a tensor cut off from the graph."""

    name, description = "liar", "claims a gradient it does not have"
    differentiable = True
    randomized = False

    def transform(self, images, generator):
        return images.detach().clamp(0.1, 0.9)


def test_a_defense_lying_about_its_gradient_is_caught_when_attacked():
    component = Component.from_class("defense", Liar, "p", "robustad-p")
    liar = DefenseStep(Handle.create(component), 0, "none")
    assert torch.equal(liar(image()), image().clamp(0.1, 0.9))  # clean scoring is fine
    with pytest.raises(ComponentError, match="declares differentiable = True, but its output carries no gradient"):
        liar(image().requires_grad_(True))


def test_a_defense_without_its_declarations_is_reported_broken_at_load():
    class Undeclared:
        name, description = "undeclared", "no differentiable / randomized"

        def transform(self, images, generator):
            return images

    with pytest.raises(TypeError, match="defense 'undeclared' lacks differentiable, randomized"):
        Component.from_class("defense", Undeclared, "p", "robustad-p")


@pytest.mark.parametrize("name, options, message", [
    ("jpeg", {"quality": 0}, "quality=0"), ("bitdepth", {"bits": 9}, "bits=9"), ("median", {"kernel": 2}, "odd"),
    ("blur", {"sigma": -1.0}, "sigma=-1.0"), ("gaussian", {"samples": 0}, "samples=0"),
    ("smoothing", {"sigma": float("inf")}, "sigma=inf"),
])
def test_bad_defense_options_are_one_line(name, options, message):
    with pytest.raises(RobustadError, match=message):
        Handle.create(get_registry().get("defense", name), **options)


def test_a_grid_attacks_through_a_defense_with_bpda_and_eot_recorded_per_row(tmp_path):
    from robustad.declaration import Request
    from robustad.engine.executors import run_local
    from robustad.engine.progress import SilentReporter
    from robustad.engine.request import build_cells
    from robustad.engine.settings import RunSettings
    from robustad.results.leaderboard import read_rows
    from tests.test_engine_faults import FaultyPlugins
    from tests.test_request import folder_dataset

    registry = get_registry()
    if not registry.pm.has_plugin("faulty"):
        registry.add(FaultyPlugins(), "faulty", "robustad-faulty")
    root = folder_dataset(tmp_path / "data")

    def rows(out, **changes):
        fields = dict(dataset="folder", data_root=root, category="all", shots="1", seeds="0",
                      backbone="tiny_ok", weights="", resolution="32", detector="anomalydino", surrogate="score",
                      attack="noise,fgsm", eps="8/255", calib="platt", calib_fraction=0.3,
                      options=["defense.gaussian.samples=2"], defense="bitdepth,gaussian")
        cells = build_cells(Request(noise_control=False, **{**fields, **changes}), registry)
        result = run_local(cells, RunSettings(data_root=root, pixel_metrics=False, resamples=0), out, registry,
                           SilentReporter(), lambda cell, row: None)
        assert not result.failures, result.failures
        return {(r["defense"], r["attack"]): r for r in read_rows(out)}

    adaptive = rows(tmp_path / "adaptive.csv", eot=3)
    fgsm = adaptive[("bitdepth", "fgsm")]
    assert (fgsm["bpda"], fgsm["eot_samples"], fgsm["defense_differentiable"]) == ("identity", "1", "False")
    assert float(fgsm["zero_grad_share"]) == 0.0  # BPDA: gradients flow, though the noise control came first
    noisy = adaptive[("gaussian", "fgsm")]
    assert (noisy["bpda"], noisy["eot_samples"], noisy["defense_randomized"], noisy["defense_samples"]) == \
        ("none", "3", "True", "2")
    assert adaptive[("bitdepth", "noise")]["bpda"] == "none"  # a control takes no gradient
    naive = rows(tmp_path / "naive.csv", bpda="off", defense="bitdepth", options=[])
    assert float(naive[("bitdepth", "fgsm")]["zero_grad_share"]) == 1.0 and naive[("bitdepth", "fgsm")]["bpda"] == "off"
    undefended = rows(tmp_path / "none.csv", defense="none", options=[])
    assert undefended[("none", "fgsm")]["bpda"] == "none" and undefended[("none", "fgsm")]["eot_samples"] == "1"
