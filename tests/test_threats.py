"""The threat label (issue 39): ``gray-box`` wherever the real score picks the kept result through a non-``score``
surrogate, ``transfer`` only for a single step; one rule for the site's ranking and the README tables."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from robustad.results.entries import ranking, with_entries
from robustad.results.threats import GRAY_BOX, TRANSFER, WHITE_BOX, row_threats
from tests.boards import board, row

ATTACKS = {  # attack: the settings its describe records (plugins/attacks.py)
    "fgsm": dict(steps=1, restarts=1), "pgd": dict(steps=10, restarts=1), "apgd": dict(steps=100, restarts=1),
    "square": dict(queries=20, restarts=1), "worstcase": dict(members='["fgsm", "pgd"]'),
}


def rows():
    found = [row(attack="noise", surrogate="none", steps=0, restarts=1, adv_auroc=0.9, clean_auroc=0.95)]
    for attack, settings in ATTACKS.items():
        for surrogate, white in (("score", True), ("linear", False)):
            found.append(row(attack=attack, surrogate=surrogate, white_box=white, adv_auroc=0.5, clean_auroc=0.95,
                             **settings))
    return board(*found)


def test_only_a_single_step_through_another_surrogate_is_a_transfer():
    frame = rows()
    labels = dict(zip(frame["attack"] + " " + frame["surrogate"], row_threats(frame)))
    assert labels == {"noise none": "", "fgsm score": WHITE_BOX, "fgsm linear": TRANSFER,
                      **{f"{a} score": WHITE_BOX for a in ATTACKS if a != "fgsm"},
                      **{f"{a} linear": GRAY_BOX for a in ATTACKS if a != "fgsm"}}


def test_the_sites_ranking_lists_gray_box_and_transfer_apart():
    lines = ranking(rows())
    assert set(lines["threat"]) == {WHITE_BOX, GRAY_BOX, TRANSFER, "any"}
    assert lines.set_index("threat").loc[TRANSFER, "attack"] == "fgsm via linear"
    assert set(with_entries(rows())["threat"]) == {"", WHITE_BOX, GRAY_BOX, TRANSFER}


@pytest.mark.parametrize("attack, surrogate, expected", [("fgsm", "linear", TRANSFER), ("pgd", "linear", GRAY_BOX),
                                                         ("square", "linear", GRAY_BOX), ("pgd", "score", WHITE_BOX)])
def test_the_detector_table_uses_the_same_rule(attack, surrogate, expected):
    tables = runpy.run_path(str(Path(__file__).resolve().parents[1] / "results" / "detectors" / "tables.py"))
    assert tables["threat"](attack, surrogate) == expected
