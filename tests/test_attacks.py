"""The threat model and the attack plugins (noise, fgsm, pgd, apgd, square, torchattacks:<Name>), each checked
against brute force, closed forms or torchattacks on hand-made targets (tests/targets.py); no engine involved."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchattacks
from robustad_plugins.attacks import APGD, FGSM, PGD, Noise, apgd_checkpoints
from robustad_plugins.square import Square, window_side
from robustad_plugins.torchattacks_attacks import TorchattacksAttack

from robustad.errors import RobustadError
from robustad.kit import attacking as kit
from robustad.kit.threat import parse_eps, two_logit
from robustad.plugins import get_registry
from tests.targets import EPS, MeanLogit, TinyLogit, images_and_labels, make_target, two_logits


class PixelLinear(torch.nn.Module):
    """z = w . x + b over the pixels: FGSM's answer is known in closed form."""

    def __init__(self, shape: tuple[int, ...], seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.weight = torch.nn.Parameter(torch.randn(shape, generator=generator))
        self.bias = torch.nn.Parameter(torch.tensor(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weight).sum(dim=(1, 2, 3)) * 1e-2 + self.bias


class Bumpy(torch.nn.Module):
    """A non-concave z: the mean of sines of random 4x4 patch projections."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.weight = torch.nn.Parameter(torch.randn(8, 3, 4, 4, generator=generator) * 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * torch.sin(torch.nn.functional.conv2d(x, self.weight, stride=4)).mean(dim=(1, 2, 3))


def adversarial_gain(z_model, adversarial, images, labels) -> torch.Tensor:
    """How far each image's z moved the adversarial way (up for normal, down for anomalous)."""
    with torch.no_grad():
        return (z_model(adversarial) - z_model(images)) * (1 - 2 * labels).float()


# --- the threat model ---------------------------------------------------------------------------------------------

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
    logits = two_logit(z)
    assert torch.allclose(logits, torch.stack([-z / 2, z / 2], dim=1))
    assert torch.allclose(logits.softmax(dim=1)[:, 1], torch.sigmoid(z))


def test_margin_and_ce_objectives_match_their_formulas():
    z, labels = torch.tensor([-3.0, 0.5, 2.0, -1.0]), torch.tensor([0, 0, 1, 1])
    logits = torch.stack([-z / 2, z / 2], dim=1)
    assert torch.allclose(kit.objective(logits, labels, "margin"), torch.tensor([-3.0, 0.5, -2.0, 1.0]))
    logistic = torch.log1p(torch.exp(torch.tensor([-3.0, 0.5, -2.0, 1.0])))  # log(1 + e^(margin))
    assert torch.allclose(kit.objective(logits, labels, "ce"), logistic, atol=1e-6)


def test_best_candidate_keeps_the_most_adversarial_score_earlier_on_ties_never_nan():
    labels = torch.tensor([0, 1, 0, 1])  # normal: higher wins; anomalous: lower wins
    best = kit.BestCandidate(labels)
    first, second, third = (torch.full((4, 3, 2, 2), value) for value in (1.0, 2.0, 3.0))
    best.offer(first, torch.tensor([0.5, 0.5, float("nan"), 0.5]))
    best.offer(second, np.array([0.7, 0.5, 0.1, 0.4]))  # image 1 ties: the first stays
    best.offer(third, torch.tensor([0.6, 0.2, float("nan"), 0.9]))
    assert best.images[:, 0, 0, 0].tolist() == [2.0, 3.0, 2.0, 2.0]


# --- every attack -------------------------------------------------------------------------------------------------

ATTACKS = {
    "noise": lambda: Noise(), "noise-uniform": lambda: Noise(distribution="uniform"), "fgsm": lambda: FGSM(),
    "pgd": lambda: PGD(steps=3), "pgd-restarts-margin": lambda: PGD(steps=2, restarts=2, loss="margin"),
    "apgd": lambda: APGD(steps=4), "square": lambda: Square(queries=8),
    "torchattacks:MIFGSM": lambda: TorchattacksAttack(attack="MIFGSM", steps=2),
    # GN adds Gaussian noise of std 0.1 and knows no eps: only the projection keeps it inside the ball
    "torchattacks:GN": lambda: TorchattacksAttack(attack="GN"),
    "torchattacks:PGD": lambda: TorchattacksAttack(attack="PGD", steps=2),
    "torchattacks:Square": lambda: TorchattacksAttack(attack="Square", n_queries=5),
}
RANDOM_ATTACKS = ["noise", "noise-uniform", "pgd", "apgd", "square", "torchattacks:PGD", "torchattacks:Square"]


@pytest.mark.parametrize("name", ATTACKS)
def test_adversarial_images_stay_in_the_box_and_the_eps_ball(name, tiny_backbone):
    images, labels = images_and_labels()
    z_model = torch.nn.Sequential(TinyLogit(tiny_backbone), MeanLogit(offset=-0.78))  # z near 0: decisions can flip
    adversarial = ATTACKS[name]().perturb(make_target(z_model, images, labels))
    assert adversarial.shape == images.shape
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert (adversarial - images).abs().max() <= EPS + 1e-6
    assert (adversarial != images).any()


@pytest.mark.parametrize("name", RANDOM_ATTACKS)
def test_an_image_gets_the_same_result_alone_and_inside_a_batch(name, tiny_backbone):
    """Random draws come from the image's own seed: image 1 of a batch of 4 = the same image attacked alone."""
    images, labels = images_and_labels()
    z_model = torch.nn.Sequential(TinyLogit(tiny_backbone), MeanLogit(offset=-0.78))  # image 1's decision flips
    seeds = [3, 5, 6, 7]
    state = torch.random.get_rng_state()
    batch = ATTACKS[name]().perturb(make_target(z_model, images, labels, seeds=seeds))
    alone = ATTACKS[name]().perturb(make_target(z_model, images[1:2], labels[1:2], seeds=seeds[1:2]))
    other_seed = ATTACKS[name]().perturb(make_target(z_model, images[1:2], labels[1:2], seeds=[9]))
    assert torch.equal(batch[1:2], alone)
    assert not torch.equal(alone, other_seed)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's generator is left alone


@pytest.mark.parametrize("name", ATTACKS)
@pytest.mark.parametrize(("change", "expected"), [
    ({"eps": 0.0}, "eps=0.0 is outside (0, 1]"), ({"eps": 2.0}, "eps=2.0 is outside (0, 1]"),
    ({"images": 255}, "expected [0,1] pixels"), ({"labels": [0, 2, 0, 1]}, "expected one 0/1 label per image"),
    ({"labels": [0, 1]}, "expected one 0/1 label per image"), ({"seeds": [1]}, "1 seeds for 4 images"),
])
def test_bad_targets_are_refused_in_one_line(name, change, expected, tiny_backbone):
    images, labels = images_and_labels()
    target = make_target(TinyLogit(tiny_backbone), images * change.get("images", 1),
                         torch.as_tensor(change.get("labels", labels)), eps=change.get("eps", EPS),
                         seeds=change.get("seeds"))
    with pytest.raises(RobustadError) as caught:
        ATTACKS[name]().perturb(target)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("create", [FGSM, PGD, lambda: APGD(steps=4), lambda: Square(queries=30),
                                    lambda: TorchattacksAttack(attack="PGD", steps=2)],
                         ids=["fgsm", "pgd", "apgd", "square", "torchattacks:PGD"])
def test_attacks_run_under_no_grad_and_move_z_the_adversarial_way(create, tiny_backbone):
    images, labels = images_and_labels()
    z_model = TinyLogit(tiny_backbone)
    with torch.no_grad():
        adversarial = create().perturb(make_target(z_model, images, labels))
    assert (adversarial_gain(z_model, adversarial, images, labels) > 0).all()


# --- noise --------------------------------------------------------------------------------------------------------

def test_sign_noise_moves_every_pixel_by_exactly_eps_unless_clipped():
    images, labels = images_and_labels(count=4, size=32)
    adversarial = Noise().perturb(make_target(None, images, labels))
    delta = adversarial - images
    clipped = (adversarial == 0) | (adversarial == 1)
    assert torch.allclose(delta[~clipped].abs(), torch.full_like(delta[~clipped], EPS), atol=1e-6)
    assert clipped.sum() < 0.1 * images.numel()
    assert 0.45 < float((delta[~clipped] > 0).float().mean()) < 0.55  # 12 000 fair coin flips


def test_uniform_noise_fills_the_ball():
    images = torch.full((4, 3, 32, 32), 0.5)
    adversarial = Noise(distribution="uniform").perturb(make_target(None, images, torch.zeros(4, dtype=torch.long)))
    delta = (adversarial - images).abs()
    assert float(delta.max()) <= EPS + 1e-7
    assert float(delta.mean()) == pytest.approx(EPS / 2, rel=0.05)  # |U(-eps, eps)| has mean eps/2
    assert float((delta < EPS / 10).float().mean()) == pytest.approx(0.1, abs=0.02)


def test_noise_needs_no_model_and_rejects_unknown_distributions():
    assert Noise.needs_surrogate is False
    with pytest.raises(RobustadError, match="distribution='gauss': expected one of sign, uniform"):
        Noise(distribution="gauss")


# --- fgsm ---------------------------------------------------------------------------------------------------------

def test_fgsm_matches_the_closed_form_step():
    images, labels = images_and_labels()
    z_model = PixelLinear(images.shape[1:])
    adversarial = FGSM().perturb(make_target(z_model, images, labels))
    # cross-entropy of [-z/2, z/2] rises with z for label 0 and falls for label 1; dz/dx = w * 1e-2
    direction = torch.sign(z_model.weight.detach()) * (1 - 2 * labels).view(-1, 1, 1, 1)
    assert torch.allclose(adversarial, (images + EPS * direction).clamp(0, 1), atol=1e-6)


def test_fgsm_equals_torchattacks_fgsm(tiny_backbone):
    images, labels = images_and_labels()
    z_model = TinyLogit(tiny_backbone)
    ours = FGSM().perturb(make_target(z_model, images, labels))
    theirs = torchattacks.FGSM(two_logits(z_model), eps=EPS)(images, labels)
    assert torch.allclose(ours, theirs, atol=1e-6)


# --- pgd: best iterate, restarts, losses ----------------------------------------------------------------------------

def brute_force_iterates(images, labels, steps, alpha, score):
    """The iterates of PGD without random start on z = mean(x) (the signed gradient is +-1 at every pixel) and
    their scores."""
    direction = (1 - 2 * labels).float().view(-1, 1, 1, 1)
    iterates = [images]
    for _ in range(steps):
        iterates.append(torch.min(torch.max(iterates[-1] + alpha * direction, images - EPS), images + EPS).clamp(0, 1))
    return iterates, [score(x) for x in iterates]


def bumpy_score(x: torch.Tensor) -> torch.Tensor:
    """A real score that is not monotone along the path: it peaks 2.5/255 from the start's mean."""
    return torch.cos((x.mean(dim=(1, 2, 3)) - 0.5 - 2.5 / 255) * 255 / 2)


def test_pgd_keeps_each_images_best_iterate_by_the_real_score_not_the_last():
    generator = torch.Generator().manual_seed(0)
    images = 0.5 + (torch.rand(6, 3, 8, 8, generator=generator) - 0.5) * 0.02  # means near 0.5, no clipping
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    target = make_target(MeanLogit(), images, labels, score=bumpy_score)
    adversarial = PGD(steps=10, random_start=False).perturb(target)
    iterates, scores = brute_force_iterates(images, labels, 10, EPS / 4, bumpy_score)
    table = torch.stack(scores) * (1 - 2 * labels).float()  # (steps + 1, images): larger is more adversarial
    best = table.argmax(dim=0)
    expected = torch.stack([iterates[int(t)][i] for i, t in enumerate(best)])
    assert torch.allclose(adversarial, expected, atol=1e-7)
    ours, last = table.max(dim=0).values, table[-1]
    assert (ours >= last).all() and (ours > last + 1e-3).any()


def test_pgd_judges_iterates_from_z_at_no_extra_cost_when_z_gives_the_score(tiny_backbone):
    images, labels = images_and_labels()
    z_model = TinyLogit(tiny_backbone)

    def no_detector(x):
        raise AssertionError("the detector was queried although score_from_logit gives every score")

    white_box = make_target(z_model, images, labels)
    white_box.score = no_detector
    calls = []
    transfer = make_target(z_model, images, labels, score=lambda x: calls.append(1) or z_model(x).detach())
    for attack in (PGD(steps=3), APGD(steps=3, loss="ce"), Square(queries=4)):
        assert torch.equal(attack.perturb(white_box), attack.perturb(transfer))
    assert len(calls) == (3 + 1) + (3 + 1) + 2  # every iterate of pgd and apgd, square's start and end point


def test_pgd_restarts_keep_each_images_best_real_score(tiny_backbone):
    images, labels = images_and_labels(count=6)
    z_model = TinyLogit(tiny_backbone)
    target = make_target(z_model, images, labels)
    one, three = PGD(steps=2).perturb(target), PGD(steps=2, restarts=3).perturb(target)
    gain_one, gain_three = (adversarial_gain(z_model, x, images, labels) for x in (one, three))
    assert (gain_three >= gain_one).all() and (gain_three > gain_one).any()


@pytest.mark.parametrize("label", [0, 1])
def test_margin_still_moves_where_the_ce_gradient_underflows(label):
    """|z| = 120 on the right side: softmax's other class is e^-120, 0 in float32, so ce's gradient is exactly 0."""
    images = torch.full((2, 3, 8, 8), 0.5)
    labels = torch.full((2,), label)
    z_model = MeanLogit(scale=10.0, offset=-125.0 if label == 0 else 115.0)
    target = make_target(z_model, images, labels)
    _, _, gradient = kit.loss_and_gradient(target, images, labels, "ce")
    assert torch.count_nonzero(gradient) == 0
    for attack in (PGD, FGSM):
        options = {"random_start": False} if attack is PGD else {}
        assert torch.equal(attack(loss="ce", **options).perturb(target), images)
        moved = attack(loss="margin", **options).perturb(target)
        assert (adversarial_gain(z_model, moved, images, labels) > 0).all()


@pytest.mark.parametrize(("options", "expected"), [
    ({"steps": 0}, "steps=0: expected an integer >= 1"), ({"restarts": 0}, "restarts=0"),
    ({"alpha_ratio": 0.0}, "alpha_ratio=0.0: expected a finite number > 0"),
    ({"loss": "hinge"}, "expected one of ce, margin"),
    ({"restarts": 2, "random_start": False}, "restarts=2 needs random_start=true"),
])
def test_pgd_rejects_bad_options(options, expected):
    with pytest.raises(RobustadError, match=expected.replace("(", r"\(")):
        PGD(**options)


# --- apgd ---------------------------------------------------------------------------------------------------------

def test_apgd_checkpoints_follow_the_paper():
    # p = 0, .22, .41, .57, .70, .80, .87, .93, .99 (each gap 0.03 shorter than the last, at least 0.06)
    assert apgd_checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    assert apgd_checkpoints(10) == [0, 3, 5, 6, 7, 8, 9, 10]


def test_apgd_is_as_strong_as_torchattacks_apgd_ce_on_a_bumpy_model():
    images, labels = images_and_labels(count=8)
    z_model = Bumpy()
    ours = APGD(steps=20).perturb(make_target(z_model, images, labels))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        attack = torchattacks.APGD(two_logits(z_model), eps=EPS, steps=20, loss="ce")
        _, theirs = attack.perturb(images, labels, best_loss=True)  # its best point even where z kept its sign
    gain_ours = adversarial_gain(z_model, ours, images, labels).mean()
    gain_theirs = adversarial_gain(z_model, theirs, images, labels).mean()
    assert gain_ours >= 0.97 * gain_theirs


# --- square -------------------------------------------------------------------------------------------------------

def test_square_window_follows_the_rescaled_schedule():
    # 10 000 queries: p_init until query 10, halved after 10, 50, 200, ...; 100 queries: query 1 counts as 100
    assert window_side(0.8, 10, 10000, 100, 100) == round(math.sqrt(0.8) * 100)
    assert window_side(0.8, 11, 10000, 100, 100) == round(math.sqrt(0.4) * 100)
    assert window_side(0.8, 1, 100, 100, 100) == round(math.sqrt(0.2) * 100)
    assert window_side(0.8, 99, 100, 100, 100) == round(math.sqrt(0.8 / 512) * 100)
    assert window_side(0.8, 5, 10000, 20, 200) == 20  # never wider than the short edge


def test_square_is_as_strong_as_torchattacks_square_where_no_decision_flips():
    """z far below 0 for normal images: torchattacks never stops early, so both spend the whole budget."""
    images, labels = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(1)), torch.zeros(6).long()
    z_model = torch.nn.Sequential(Bumpy(), MeanLogit(offset=-50.0))
    ours = Square(queries=60).perturb(make_target(z_model, images, labels))
    gains = []
    for seed in range(2):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            attack = torchattacks.Square(two_logits(z_model), eps=EPS, n_queries=60)
            attack.init_hyperparam(images)
            gains.append(adversarial_gain(z_model, attack.attack_single_run(images, labels)[1], images, labels).mean())
    assert adversarial_gain(z_model, ours, images, labels).mean() >= 0.85 * float(np.mean(gains))


def test_square_never_ends_below_its_start_and_uses_no_gradient(tiny_backbone):
    images, labels = images_and_labels()
    z_model = TinyLogit(tiny_backbone)
    with torch.no_grad():  # a gradient would fail here
        adversarial = Square(queries=30, loss="ce").perturb(make_target(z_model, images, labels))
    assert (adversarial_gain(z_model, adversarial, images, labels) > 0).all()


@pytest.mark.parametrize(("options", "expected"), [
    ({"queries": 0}, "queries=0: expected an integer >= 1"), ({"p_init": 1.5}, "p_init=1.5"),
    ({"loss": "dlr"}, "needs at least 3 classes"),
])
def test_square_rejects_bad_options(options, expected):
    with pytest.raises(RobustadError, match=expected):
        Square(**options)


# --- DLR ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("create", [
    lambda: APGD(loss="dlr"), lambda: PGD(loss="dlr"), lambda: TorchattacksAttack(attack="APGD", loss="dlr"),
    lambda: TorchattacksAttack(attack="UPGD", loss="dlr"), lambda: TorchattacksAttack(attack="APGDT"),
    lambda: TorchattacksAttack(attack="autoattack"),
], ids=["apgd", "pgd", "torchattacks:APGD", "torchattacks:UPGD", "torchattacks:APGDT", "torchattacks:AutoAttack"])
def test_dlr_is_refused_at_construction_in_one_line(create):
    with pytest.raises(RobustadError) as caught:
        create()
    message = str(caught.value)
    assert "DLR" in message and "at least 3 classes" in message and "two logits" in message and "\n" not in message


# --- torchattacks:<Name> ------------------------------------------------------------------------------------------

def test_generic_options_are_converted_and_passed_on():
    attack = TorchattacksAttack(attack="MIFGSM", alpha="1/255", decay="0.5", steps="3")
    assert attack.attack_cls.__name__ == "MIFGSM"
    assert attack.options == {"alpha": 1 / 255, "decay": 0.5, "steps": 3}
    assert TorchattacksAttack(attack="FAB").options["n_classes"] == 2  # two logits, not torchattacks' 10


@pytest.mark.parametrize(("options", "expected"), [
    ({"attack": "NOPE"}, "'NOPE'; choose from: "),
    ({}, "None; choose from: "),
    ({"attack": "MultiAttack"}, "choose from"),
    ({"attack": "PGD", "stepz": 3}, "no option 'stepz'; options: alpha, steps, random_start"),
    ({"attack": "PGD", "eps": 0.1}, "eps comes from the eps grid"),
    ({"attack": "APGD", "seed": 3}, "seeds are drawn per image from the cell seed"),
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


def test_a_model_without_parameters_is_attacked_quietly(capsys):
    images, labels = images_and_labels()
    z_model = MeanLogit(scale=50.0, offset=-25.0)  # torchattacks cannot read a device off it
    adversarial = TorchattacksAttack(attack="PGD", steps=2).perturb(make_target(z_model, images, labels))
    assert (adversarial_gain(z_model, adversarial, images, labels) > 0).all()
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("attack", ["Square", "APGD"])
def test_torchattacks_square_and_apgd_return_clean_images_where_the_decision_does_not_flip(attack, tiny_backbone):
    """torchattacks' semantics, kept by the wrapper: an image whose surrogate decision is already wrong (normal with
    z > 0) or does not flip comes back clean; robustad's square and apgd move every image."""
    images, labels = images_and_labels()
    z_model = TinyLogit(tiny_backbone)  # z > 0 on all four: images 0 and 2 (normal) are already "wrong"
    target = make_target(z_model, images, labels)
    options = {"n_queries": 20} if attack == "Square" else {"steps": 5}
    theirs = TorchattacksAttack(attack=attack, **options).perturb(target)
    ours = (Square(queries=20) if attack == "Square" else APGD(steps=5)).perturb(target)
    assert torch.equal(theirs[labels == 0], images[labels == 0])
    assert (adversarial_gain(z_model, ours, images, labels) > 0).all()


# --- rows and registry --------------------------------------------------------------------------------------------

def test_describe_rows():
    assert Noise().describe(EPS) == {"steps": 0, "random_start": True, "restarts": 1}
    assert FGSM().describe(EPS) == {"steps": 1, "alpha": EPS, "random_start": False, "restarts": 1,
                                    "loss": "margin"}
    assert PGD().describe(EPS) == {"steps": 10, "alpha": EPS / 4, "random_start": True, "restarts": 1,
                                   "loss": "margin"}
    assert APGD(loss="margin").describe(EPS) == {"steps": 100, "random_start": True, "restarts": 1,
                                                 "loss": "margin"}
    assert APGD().describe(EPS)["loss"] == "ce+margin"  # AutoAttack's pair: cross-entropy and a margin loss
    assert Square().describe(EPS) == {"queries": 100, "random_start": True, "restarts": 1, "loss": "margin"}
    assert TorchattacksAttack(attack="mifgsm", steps="4").describe(EPS) == {
        "steps": 4, "alpha": 2 / 255, "random_start": False, "restarts": 1}
    assert TorchattacksAttack(attack="Square").describe(EPS)["queries"] == 5000


def test_registry_lists_the_attacks_with_their_options():
    attacks = get_registry().components("attack")
    options = {name: [o.name for o in attacks[name].options] for name in attacks}
    assert options["noise"] == ["distribution"]
    assert options["fgsm"] == ["loss"]
    assert options["pgd"] == ["steps", "alpha_ratio", "random_start", "restarts", "loss", "flag_aware",
                              "flag_posterior"]
    assert options["apgd"] == ["steps", "restarts", "loss", "flag_aware", "flag_posterior"]
    assert options["square"] == ["queries", "loss", "p_init", "restarts"]
    assert options["worstcase"] == ["members", "clean"]
    assert options["torchattacks"][0] == "attack"
    assert attacks["torchattacks"].create(attack="MIFGSM", decay="0.5").options["decay"] == 0.5
