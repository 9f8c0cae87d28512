"""The L2 threat model (issue 23): the projection onto the L2 ball intersected with [0,1] against an independent
solver, the L2 attacks against the analytic optimum of a linear score, and the one-line refusals."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from robustad_plugins.attacks import APGD, FGSM, PGD, Noise
from scipy.optimize import minimize

from robustad.engine.attacking import _checked
from robustad.engine.guard import ComponentError
from robustad.engine.request import build_cells
from robustad.errors import RobustadError
from robustad.kit import attacking as kit
from robustad.kit.threat import canonical_eps, parse_eps, project
from robustad.plugins import get_registry
from robustad.records import Cell, DetectorOutput
from tests.targets import make_target
from tests.test_request import REQUEST, folder_dataset

L2_EPS = 0.5


class Linear(torch.nn.Module):
    """z = w . x: the L2 optimum over the ball (where the box does not bind) moves x by +-eps * w / ||w||."""

    def __init__(self, shape: tuple[int, ...], seed: int = 0) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(shape, generator=torch.Generator().manual_seed(seed)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weight).sum(dim=(1, 2, 3))


def mid_images(count: int = 4, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Images near 0.5, far enough from the box edge that a move of L2 norm 0.5 never reaches it."""
    images = 0.5 + 0.1 * (torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(1)) - 0.5)
    return images, torch.arange(count) % 2


def nearest_by_slsqp(y: np.ndarray, clean: np.ndarray, eps: float) -> np.ndarray:
    """The nearest point to y of {x in [0,1]^d : ||x - clean|| <= eps}, by scipy's SLSQP (an independent solver)."""
    found = minimize(lambda x: 0.5 * np.sum((x - y) ** 2), np.clip(clean, 0, 1), jac=lambda x: x - y,
                     bounds=[(0.0, 1.0)] * y.size, method="SLSQP", options={"ftol": 1e-14, "maxiter": 500},
                     constraints=[{"type": "ineq", "fun": lambda x: eps ** 2 - np.sum((x - clean) ** 2),
                                   "jac": lambda x: -2 * (x - clean)}])
    return found.x


@pytest.mark.parametrize("eps", [0.05, 0.3, 1.0, 3.0])
def test_the_l2_projection_is_the_nearest_point_of_the_ball_and_the_box(eps):
    generator = torch.Generator().manual_seed(7)
    clean = torch.rand(6, 3, 2, 2, generator=generator, dtype=torch.float64)
    clean[0, 0] = 0.0  # clean pixels on the box edge
    clean[1, 1] = 1.0
    wanted = clean + 1.5 * torch.randn(clean.shape, generator=generator, dtype=torch.float64)
    projected = project(wanted, clean, eps, "l2")
    distances = (projected - clean).flatten(1).norm(dim=1)
    assert (distances <= eps + 1e-12).all() and projected.min() >= 0 and projected.max() <= 1
    for image in range(clean.shape[0]):
        y, c = wanted[image].flatten().numpy(), clean[image].flatten().numpy()
        expected = nearest_by_slsqp(y, c, eps)
        assert np.linalg.norm(expected - c) <= eps + 1e-7 and expected.min() >= -1e-9 and expected.max() <= 1 + 1e-9
        assert np.allclose(projected[image].flatten().numpy(), expected, atol=1e-5)


def test_the_l2_projection_leaves_a_point_inside_the_ball_and_the_box_alone():
    clean, _ = mid_images()
    inside = clean + kit.on_sphere(torch.randn(clean.shape, generator=torch.Generator().manual_seed(2)), 0.2)
    assert torch.equal(project(inside, clean, L2_EPS, "l2"), inside)


def test_the_l2_projection_of_float32_images_stays_in_the_ball_by_a_float64_check():
    generator = torch.Generator().manual_seed(3)
    clean = torch.rand(3, 3, 64, 64, generator=generator)
    projected = project(clean + torch.randn(clean.shape, generator=generator), clean, L2_EPS, "l2")
    distances = (projected.double() - clean.double()).flatten(1).norm(dim=1).numpy()
    assert (distances <= L2_EPS * (1 + 1e-6)).all() and (distances > L2_EPS * 0.999).all()


def optimum(z_model: Linear, images: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    """The analytic L2 optimum of z = w . x: up for normal, down for anomalous images, along w / ||w||."""
    w = z_model.weight.detach()
    return images + eps * (1 - 2 * labels).float().view(-1, 1, 1, 1) * w / w.norm()


@pytest.mark.parametrize("attack", [FGSM(), PGD(steps=10, random_start=False), PGD(steps=40),
                                    PGD(steps=40, loss="margin"), APGD(steps=40)],
                         ids=["fgsm", "pgd-no-start", "pgd", "pgd-margin", "apgd"])
def test_l2_attacks_reach_the_analytic_optimum_of_a_linear_score(attack):
    images, labels = mid_images()
    z_model = Linear(images.shape[1:])
    adversarial = attack.perturb(make_target(z_model, images, labels, eps=L2_EPS, norm="l2"))
    expected = optimum(z_model, images, labels, L2_EPS)
    assert ((expected - images).abs() < 0.39).all()  # the box never binds, so the optimum is the ball's
    assert torch.allclose(adversarial, expected, atol=2e-3)
    gain = (z_model(adversarial) - z_model(images)).detach() * (1 - 2 * labels).float()
    best = L2_EPS * float(z_model.weight.detach().norm())
    assert torch.allclose(gain, torch.full_like(gain, best), rtol=1e-3)


def test_l2_sign_noise_lies_on_the_sphere_and_uniform_noise_fills_the_ball():
    images, labels = mid_images(count=64, size=2)
    sign = Noise().perturb(make_target(None, images, labels, eps=L2_EPS, norm="l2"))
    norms = (sign - images).flatten(1).norm(dim=1)
    assert torch.allclose(norms, torch.full_like(norms, L2_EPS), rtol=1e-5)
    assert torch.allclose((sign - images).abs(), torch.full_like(images, L2_EPS / 12 ** 0.5), rtol=1e-4)
    uniform = Noise(distribution="uniform").perturb(make_target(None, images, labels, eps=L2_EPS, norm="l2"))
    radii = ((uniform - images).flatten(1).norm(dim=1) / L2_EPS).numpy()
    assert radii.max() <= 1 + 1e-6
    # uniform in the 12-ball: the radius r has P(r <= t) = t^12, so r^12 is uniform on [0, 1]
    assert abs(np.mean(radii ** 12) - 0.5) < 0.15 and radii.min() < 0.9


def test_linf_attacks_are_unchanged_by_the_norm_field_default():
    images, labels = mid_images()
    z_model = Linear(images.shape[1:])
    ours = PGD(steps=5).perturb(make_target(z_model, images, labels))
    explicit = PGD(steps=5).perturb(make_target(z_model, images, labels, norm="linf"))
    assert torch.equal(ours, explicit) and float((ours - images).abs().max()) <= 8 / 255 + 1e-7


# --- the engine's check and the one-line refusals --------------------------------------------------------------

def cell(norm: str, **changes) -> Cell:
    return Cell("demo", "part", "1", 0, "b", "", 32, "anomalydino", "linear", "pgd", "1/2", "platt", 0.3, norm=norm,
                **changes)


class Stage:
    """What ``_checked`` reads of a clean stage: the detector's scores of images (no defense in front)."""

    backbone = SimpleNamespace(defense=None)

    @staticmethod
    def score(images: torch.Tensor) -> DetectorOutput:
        return DetectorOutput(images.mean(dim=(1, 2, 3)).numpy(), np.zeros((images.shape[0], 1, 1)))


def test_the_engine_checks_the_l2_ball_of_an_l2_cell_and_the_linf_ball_of_an_linf_cell():
    component = get_registry().get("attack", "pgd")
    clean, _ = mid_images()
    direction = kit.on_sphere(torch.randn(clean.shape, generator=torch.Generator().manual_seed(4)), 1.0)
    inside, outside = clean + 0.49 * direction, clean + 0.51 * direction
    assert torch.equal(_checked(inside, clean, L2_EPS, component, cell("l2"), Stage()).images, inside)
    with pytest.raises(ComponentError, match=r"broke the threat model: L2 distance 0\.51"):
        _checked(outside, clean, L2_EPS, component, cell("l2"), Stage())
    with pytest.raises(ComponentError, match="broke the threat model: L-inf distance"):
        _checked(inside, clean, 8 / 255, component, cell("linf"), Stage())


def test_l2_cells_get_their_own_key_and_linf_cells_keep_theirs():
    # a first-protocol cell with every later field at what it meant then: the key of the first release's fields
    first = cell("linf", protocol=1, keep_clean=False)
    assert first.key == first.legacy_key and cell("linf").legacy_key is None
    assert cell("l2").key != cell("linf").key


def test_l2_eps_above_one_parses_only_under_l2():
    assert parse_eps("2.5", "l2") == 2.5 and canonical_eps("0.50", "l2") == "1/2"
    with pytest.raises(RobustadError, match="outside \\(0, 1\\]"):
        parse_eps("2.5")
    with pytest.raises(RobustadError, match="outside \\(0, 1000\\]"):
        parse_eps("2000", "l2")


@pytest.fixture
def data(tmp_path):
    return folder_dataset(tmp_path / "data")


def built(data, **changes) -> list[Cell]:
    return build_cells(replace(REQUEST, data_root=data, **changes), get_registry())


@pytest.mark.parametrize("changes, message", [
    ({"attack": "square", "norm": "l2", "eps": "0.5"},
     "attack 'square' does not support --norm l2: attack 'square'"),
    ({"attack": "torchattacks:FGSM", "norm": "l2", "eps": "0.5"},
     "attack 'torchattacks:FGSM' does not support --norm l2"),
    ({"attack": "worstcase", "norm": "l2", "eps": "0.5"}, "attack 'square' does not support --norm l2"),
    ({"attack": "pgd", "norm": "l2", "eps": "0.5", "round_8bit": True},
     "--round-8bit with --norm l2: rounding to the 8-bit grid can leave the L2 ball"),
    ({"norm": "l1"}, "--norm 'l1': expected one of linf, l2"),
])
def test_what_l2_cannot_run_is_refused_in_one_line(data, changes, message):
    with pytest.raises(RobustadError) as error:
        built(data, **changes)
    assert message in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_l2_attacked_cells_record_the_norm_and_clean_cells_keep_linf(data):
    found = built(data, attack="none,noise,pgd,apgd,fgsm", norm="l2", eps="0.25,2")
    norms = {(c.attack, c.eps): c.norm for c in found}
    assert norms[("none", "")] == "linf"
    assert {n for (a, _), n in norms.items() if a != "none"} == {"l2"}
    assert {e for (a, e) in norms if a == "pgd"} == {"1/4", "2"}
    linf = built(data, attack="pgd", eps="2/255")
    assert [c.key for c in linf] == [c.key for c in built(data, attack="pgd", eps="2/255", norm="linf")]
    assert not {c.key for c in linf} & {c.key for c in found}


@pytest.mark.parametrize("args, message", [
    (["--norm", "l1"], "--norm 'l1': expected one of linf, l2"),
    (["--norm", "l2", "--round-8bit"], "--round-8bit with --norm l2"),
    (["--cert-radius", "0.5"], "--cert-radius 1/2: no defense of --defense none can be certified"),
    (["--cert-alpha", "0"], "--cert-alpha 0.0: expected a number in (0, 1)"),
])
def test_on_the_command_line_l2_and_certificate_mistakes_are_one_line(tmp_path, monkeypatch, capsys, args, message):
    from tests.boards import run_robustad

    code, out, err = run_robustad(monkeypatch, capsys, "bench", *args, "--attack", "none", "--out",
                                  tmp_path / "out.csv")
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("robustad: error: ") and message in err, err
    assert not (tmp_path / "out.csv").exists()
