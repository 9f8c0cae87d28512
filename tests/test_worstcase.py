"""``worstcase``: the per-image worst case over member results, checked against brute force and sklearn's AUROC on
hand-made member outputs (no engine, no model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from robustad_plugins.worstcase import WorstCase
from sklearn.metrics import roc_auc_score

from robustad.contracts import Perturbed
from robustad.errors import RobustadError
from robustad.records import DetectorOutput
from tests.targets import make_target

LABELS = [0, 0, 1, 1, 0, 1]
SCORES = {  # per member, per image; ties on image 1 (a and c) and image 3 (all three)
    "a": [0.20, 0.50, 0.70, 0.40, 0.10, 0.90],
    "b:3": [0.30, 0.40, 0.60, 0.40, 0.05, 0.95],
    "c": [0.25, 0.50, 0.80, 0.40, 0.65, 0.85],
}


def member_results(with_masks: bool = True) -> dict[str, Perturbed]:
    """Member m's images are filled with m's index, its patch distances with index + 10, so picks can be traced."""
    results = {}
    for index, (spec, scores) in enumerate(SCORES.items()):
        count = len(scores)
        masks = np.full((count, 2, 2), index % 2 == 0) if with_masks else None
        output = DetectorOutput(np.array(scores, dtype=np.float32), np.full((count, 2, 2), index + 10.0), masks)
        results[spec] = Perturbed(torch.full((count, 3, 4, 4), float(index)), output)
    return results


def worst_target(results: dict[str, Perturbed], asked: list[str] | None = None):
    images = torch.full((len(LABELS), 3, 4, 4), 0.5)

    def member(spec: str) -> Perturbed:
        if asked is not None:
            asked.append(spec)
        return results[spec]

    return make_target(None, images, torch.tensor(LABELS), member=member)


def brute_force_choice() -> list[int]:
    """Per image, the first member with the highest score (normal) or the lowest (anomalous)."""
    specs = list(SCORES)
    chosen = []
    for image, label in enumerate(LABELS):
        best = 0
        for member in range(1, len(specs)):
            score, best_score = SCORES[specs[member]][image], SCORES[specs[best]][image]
            if (label == 0 and score > best_score) or (label == 1 and score < best_score):
                best = member
        chosen.append(best)
    return chosen


def test_worstcase_picks_each_images_most_adversarial_member_first_on_ties():
    asked = []
    result = WorstCase(members="a+b:3+c").perturb(worst_target(member_results(), asked))
    chosen = brute_force_choice()
    assert chosen == [1, 0, 1, 0, 2, 2]  # hand-checked: image 1 a/c tie -> a, image 3 three-way tie -> a
    assert asked == ["a", "b:3", "c"]
    specs = list(SCORES)
    assert result.images[:, 0, 0, 0].tolist() == [float(m) for m in chosen]
    assert result.output.scores.tolist() == pytest.approx([SCORES[specs[m]][i] for i, m in enumerate(chosen)])
    assert result.output.patch_distances[:, 0, 0].tolist() == [m + 10.0 for m in chosen]
    assert result.output.masks[:, 0, 0].tolist() == [m % 2 == 0 for m in chosen]
    assert result.output.extra["worstcase_member"] == [specs[m] for m in chosen]


def test_worstcase_auroc_is_at_most_every_members():
    result = WorstCase(members="a+b:3+c").perturb(worst_target(member_results()))
    worst = roc_auc_score(LABELS, result.output.scores)
    assert all(worst <= roc_auc_score(LABELS, scores) for scores in SCORES.values())
    assert worst < min(roc_auc_score(LABELS, scores) for scores in SCORES.values())


def test_worstcase_drops_masks_unless_every_member_has_them():
    results = member_results()
    results["c"] = Perturbed(results["c"].images, DetectorOutput(results["c"].output.scores,
                                                                 results["c"].output.patch_distances, None))
    assert WorstCase(members="a+b:3+c").perturb(worst_target(results)).output.masks is None


def test_worstcase_with_clean_also_weighs_the_unperturbed_image_and_prefers_members_on_ties():
    clean_scores = torch.tensor([0.35, 0.50, 0.90, 0.10, 0.70, 0.95])  # beats every member on images 0, 3 and 4
    results = member_results()
    target = worst_target(results)
    target.images = torch.full((len(LABELS), 3, 4, 4), 9.0 / 10)
    target.score = lambda x: clean_scores if torch.equal(x, target.images) else pytest.fail("scored other images")
    images = WorstCase(members="a+b:3+c", clean=True).perturb(target)
    candidates = {**{spec: SCORES[spec] for spec in SCORES}, "clean": clean_scores.tolist()}
    expected = []
    for image, label in enumerate(LABELS):  # brute force: first of the most adversarial, the clean image last
        ranked = [(score[image] if label == 0 else -score[image]) for score in candidates.values()]
        expected.append(ranked.index(max(ranked)))
    assert expected == [3, 0, 1, 3, 3, 2]  # image 1: a, c and clean tie at 0.50 -> a
    values = {0: 0.0, 1: 1.0, 2: 2.0, 3: 0.9}
    assert images[:, 0, 0, 0].tolist() == pytest.approx([values[m] for m in expected])


def test_worstcase_lists_its_members_and_describes_them():
    attack = WorstCase(members=" noise + pgd:20+torchattacks:MIFGSM ")
    assert attack.members() == ["noise", "pgd:20", "torchattacks:MIFGSM"]
    assert attack.describe(8 / 255) == {"members": "noise+pgd:20+torchattacks:MIFGSM"}
    assert WorstCase().members() == ["noise", "fgsm", "pgd", "apgd", "square"]
    assert WorstCase(members="noise+pgd", clean=True).describe(8 / 255) == {"members": "noise+pgd+clean"}
    assert WorstCase.needs_surrogate is True


@pytest.mark.parametrize(("members", "expected"), [
    ("noise+worstcase", "worstcase cannot be its own member"),
    ("worstcase:noise+pgd", "worstcase cannot be its own member"),
    ("noise++pgd", "expected attack specs joined by '+'"),
    ("", "expected attack specs joined by '+'"),
    ("pgd:", "expected NAME or NAME:VALUE"),
])
def test_worstcase_refuses_bad_member_lists_in_one_line(members, expected):
    with pytest.raises(RobustadError) as caught:
        WorstCase(members=members)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_worstcase_refuses_missing_or_broken_member_results():
    with pytest.raises(RobustadError, match="target.member is None"):
        WorstCase(members="a").perturb(make_target(None, torch.zeros(6, 3, 4, 4), torch.tensor(LABELS)))
    results = member_results()
    results["a"].output.scores[2] = np.nan
    with pytest.raises(RobustadError, match="member 'a' gave a NaN score \\(image 2\\)"):
        WorstCase(members="a+c").perturb(worst_target(results))
    results = member_results()
    short = Perturbed(results["c"].images[:2], DetectorOutput(np.zeros(2), np.zeros((2, 2, 2))))
    with pytest.raises(RobustadError, match="member 'c' gave 2 scores for 6 images"):
        WorstCase(members="a+c").perturb(worst_target({**results, "c": short}))


def test_standard_is_autoattack_grade_by_default():
    """Issue 38's budget: Auto-PGD with ce and margin, 100 steps; Square >= 1,000 queries; the clean image."""
    from robustad_plugins.attacks import APGD
    from robustad_plugins.square import Square
    from robustad_plugins.worstcase import Standard

    from robustad.components import parse_spec
    from robustad.engine.adaptive import EOT_DEFAULT

    standard = Standard()
    assert standard.clean is True and standard.norms == ("linf",) and standard.needs_surrogate is True
    specs = dict(parse_spec(spec) for spec in standard.members())
    assert set(specs) == {"apgd", "square"}
    apgd, square = APGD(steps=int(specs["apgd"])), Square(queries=int(specs["square"]))
    assert apgd.steps == 100 and apgd.losses == ("ce", "margin")
    assert square.queries >= 1000 and EOT_DEFAULT >= 16
    assert standard.describe(8 / 255) == {"members": "apgd:100+square:1000+clean"}
    with pytest.raises(RobustadError, match="cannot be its own member"):
        Standard(members="apgd+standard")
