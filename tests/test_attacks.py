"""The threat model (robustad.kit.threat) and the torchattacks attack plugins, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from robustad_plugins.torchattacks_attacks import FGSM, PGD, TorchattacksAttack

from robustad.errors import RobustadError
from robustad.kit.threat import TwoLogit, parse_eps
from robustad.plugins import get_registry

EPS = 8 / 255


class PixelLinear(torch.nn.Module):
    """z = w . x + b over the pixels: FGSM's answer is known in closed form."""

    def __init__(self, shape: tuple[int, ...], seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.weight = torch.nn.Parameter(torch.randn(shape, generator=generator))
        self.bias = torch.nn.Parameter(torch.tensor(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weight).sum(dim=(1, 2, 3)) * 1e-2 + self.bias


class TinyLogit(torch.nn.Module):
    """A nonlinear z through the tiny random backbone."""

    def __init__(self, backbone: torch.nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.backbone(x).patch_tokens
        return 5 * (tokens[..., 0] * tokens[..., 1]).mean(dim=(1, 2))


def images_and_labels(count: int = 4, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(count, 3, size, size, generator=generator)
    images[:, 0, :2] = 0.0  # pixels on the box edge: the result must stay in [0, 1]
    images[:, 1, :2] = 1.0
    return images, torch.arange(count) % 2


@pytest.mark.parametrize(("text", "value"), [("2/255", 2 / 255), (" 8/255 ", 8 / 255), ("0.0078", 0.0078),
                                             ("1", 1.0), ("1e-3", 1e-3)])
def test_parse_eps_reads_fractions_and_decimals(text, value):
    assert parse_eps(text) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("text", ["0", "-1/255", "2", "256/255", "abc", "1/0", "nan", "inf", "", "2 / 255"])
def test_parse_eps_rejects_bad_values_in_one_line(text):
    with pytest.raises(RobustadError) as caught:
        parse_eps(text)
    message = str(caught.value)
    assert repr(text) in message and "\n" not in message


def test_two_logit_is_the_logistic_model_of_z():
    z = torch.tensor([-3.0, 0.0, 0.7, 40.0])
    logits = TwoLogit(lambda x: x)(z)
    assert torch.allclose(logits, torch.stack([-z / 2, z / 2], dim=1))
    assert torch.allclose(logits.softmax(dim=1)[:, 1], torch.sigmoid(z))


def test_two_logit_gradient_is_nonzero(tiny_backbone):
    images, labels = images_and_labels()
    images.requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(TwoLogit(TinyLogit(tiny_backbone))(images), labels)
    (gradient,) = torch.autograd.grad(loss, images)
    per_image = gradient.abs().flatten(1).sum(dim=1)
    assert (per_image > 0).all()


def test_fgsm_matches_the_closed_form_step():
    images, labels = images_and_labels()
    model = TwoLogit(PixelLinear(images.shape[1:]))
    adversarial = FGSM().perturb(model, images, labels, EPS)
    # cross-entropy of [-z/2, z/2] rises with z for label 0 and falls for label 1; dz/dx = w * 1e-2
    direction = torch.sign(model.z_model.weight.detach()) * (1 - 2 * labels).view(-1, 1, 1, 1)
    expected = (images + EPS * direction).clamp(0, 1)
    assert torch.allclose(adversarial, expected, atol=1e-6)


# GN adds Gaussian noise of std 0.1 and knows no eps: only the projection keeps it inside the ball
ATTACKS = [FGSM(), PGD(), PGD(steps=3, restarts=2), TorchattacksAttack(attack="MIFGSM"),
           TorchattacksAttack(attack="BIM", steps=3), TorchattacksAttack(attack="GN")]


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: getattr(a, "attack", a.name))
def test_adversarial_images_stay_in_the_box_and_the_eps_ball(attack, tiny_backbone):
    images, labels = images_and_labels()
    model = TwoLogit(TinyLogit(tiny_backbone))
    adversarial = attack.perturb(model, images, labels, EPS)
    assert adversarial.shape == images.shape
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert (adversarial - images).abs().max() <= EPS + 1e-6
    assert (adversarial != images).any()


def test_pgd_moves_z_the_adversarial_way(tiny_backbone):
    images, labels = images_and_labels()
    z_model = TinyLogit(tiny_backbone)
    adversarial = PGD().perturb(TwoLogit(z_model), images, labels, EPS)
    with torch.no_grad():
        change = z_model(adversarial) - z_model(images)
    assert (change[labels == 0] > 0).all() and (change[labels == 1] < 0).all()


def test_pgd_is_reproducible_and_leaves_the_global_rng_alone(tiny_backbone):
    images, labels = images_and_labels()
    model = TwoLogit(TinyLogit(tiny_backbone))
    torch.manual_seed(123)
    first = PGD(steps=2, seed=5).perturb(model, images, labels, EPS)
    after_attack = torch.rand(3)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    second = PGD(steps=2, seed=5).perturb(model, images, labels, EPS)
    other_seed = PGD(steps=2, seed=6).perturb(model, images, labels, EPS)
    assert torch.equal(first, second)
    assert not torch.equal(first, other_seed)
    assert torch.equal(after_attack, expected_next)


def test_pgd_without_a_seed_follows_the_callers_rng(tiny_backbone):
    """The runner seeds torch with the cell seed; an unseeded PGD's random start must follow it."""
    images, labels = images_and_labels()
    model = TwoLogit(TinyLogit(tiny_backbone))
    starts = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        starts.append(PGD(steps=1, alpha_ratio=1e-6).perturb(model, images, labels, EPS))
    assert torch.equal(starts[0], starts[1])
    assert not torch.equal(starts[0], starts[2])


def test_pgd_restarts_keep_each_images_strongest_result(tiny_backbone):
    images, labels = images_and_labels(count=6)
    z_model = TinyLogit(tiny_backbone)
    one = PGD(steps=2, seed=1).perturb(TwoLogit(z_model), images, labels, EPS)
    three = PGD(steps=2, seed=1, restarts=3).perturb(TwoLogit(z_model), images, labels, EPS)
    sign = (1 - 2 * labels).float()  # adversarial direction of z
    with torch.no_grad():
        assert (sign * z_model(three) >= sign * z_model(one) - 1e-7).all()


def test_describe_rows():
    assert FGSM().describe(EPS) == {"steps": 1, "alpha": EPS, "random_start": False, "restarts": 1}
    assert PGD().describe(EPS) == {"steps": 10, "alpha": EPS / 4, "random_start": True, "restarts": 1}
    described = TorchattacksAttack(attack="mifgsm", steps="4").describe(EPS)
    assert described == {"steps": 4, "alpha": 2 / 255, "random_start": False, "restarts": 1}


def test_generic_options_are_converted_and_passed_on():
    attack = TorchattacksAttack(attack="MIFGSM", alpha="1/255", decay="0.5", steps="3")
    assert attack.attack_cls.__name__ == "MIFGSM"
    assert attack.options == {"alpha": 1 / 255, "decay": 0.5, "steps": 3}
    assert TorchattacksAttack(attack="APGDT").options["n_classes"] == 2  # two logits, not torchattacks' 10
    assert TorchattacksAttack(attack="APGD", seed=7).options["seed"] == 7


@pytest.mark.parametrize(("options", "expected"), [
    ({"attack": "NOPE"}, "'NOPE'; choose from: "),
    ({}, "None; choose from: "),
    ({"attack": "MultiAttack"}, "choose from"),
    ({"attack": "PGD", "stepz": 3}, "no option 'stepz'; options: alpha, steps, random_start"),
    ({"attack": "PGD", "eps": 0.1}, "eps comes from the eps grid"),
    ({"attack": "PGD", "steps": "many"}, "steps='many': expected int"),
    ({"attack": "PGD", "random_start": "maybe"}, "random_start='maybe': expected bool"),
])
def test_generic_rejects_unknown_attacks_and_options_in_one_line(options, expected):
    with pytest.raises(RobustadError) as caught:
        TorchattacksAttack(**options)
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    if "choose from" in expected:
        choices = str(caught.value).split("choose from: ")[1].split(", ")
        assert "MIFGSM" in choices and "MultiAttack" not in choices and "LGV" not in choices


@pytest.mark.parametrize("options", [{"steps": 0}, {"restarts": 0}, {"alpha_ratio": 0.0}])
def test_pgd_rejects_bad_options(options):
    with pytest.raises(RobustadError):
        PGD(**options)


def test_perturb_rejects_images_outside_the_box_and_bad_labels(tiny_backbone):
    images, labels = images_and_labels()
    model = TwoLogit(TinyLogit(tiny_backbone))
    with pytest.raises(RobustadError, match=r"expected \[0,1\] pixels"):
        FGSM().perturb(model, images * 255, labels, EPS)
    with pytest.raises(RobustadError, match="one 0/1 label per image"):
        FGSM().perturb(model, images, labels[:2], EPS)
    with pytest.raises(RobustadError, match="one 0/1 label per image"):
        FGSM().perturb(model, images, labels + 1, EPS)
    with pytest.raises(RobustadError, match="eps=2"):
        FGSM().perturb(model, images, labels, 2.0)


def test_attack_accepts_numpy_labels_and_runs_under_no_grad(tiny_backbone):
    images, labels = images_and_labels()
    model = TwoLogit(TinyLogit(tiny_backbone))
    with torch.no_grad():
        adversarial = FGSM().perturb(model, images, np.asarray(labels), EPS)
    assert (adversarial != images).any()


def test_registry_lists_the_attacks_with_their_options():
    registry = get_registry()
    attacks = registry.components("attack")
    assert {"fgsm", "pgd", "torchattacks"} <= set(attacks)
    assert [o.name for o in attacks["pgd"].options] == ["steps", "alpha_ratio", "random_start", "restarts", "seed"]
    assert attacks["torchattacks"].options[0].name == "attack"
    assert attacks["fgsm"].options == ()
    created = attacks["torchattacks"].create(attack="MIFGSM", decay="0.5")
    assert created.options["decay"] == 0.5


def test_a_model_without_parameters_is_attacked_quietly(capsys):
    images, labels = images_and_labels()
    model = TwoLogit(lambda x: 50 * (x.mean(dim=(1, 2, 3)) - 0.5))  # torchattacks cannot read a device off it
    adversarial = PGD(steps=2).perturb(model, images, labels, EPS)
    sign = (1 - 2 * labels).view(-1, 1, 1, 1)  # dz/dx > 0 everywhere: normal up, anomalous down
    moved = (adversarial - images) * sign
    assert (moved.flatten(1).mean(dim=1) > 0).all()
    assert capsys.readouterr().out == ""
