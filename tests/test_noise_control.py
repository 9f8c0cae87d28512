"""A noise control takes no gradient, so how the attacks take theirs (BPDA, EOT draws) does not separate it from
them: the site shows it and the audit compares against it (results/defenses: jpeg, bitdepth, gaussian and
smoothing had an empty noise column)."""

from __future__ import annotations

import pytest

from robustad.records import fields_with
from robustad.results.audit import run_checks
from robustad.results.entries import ranking
from robustad.results.frame import CONTROL_IDENTITY, MODEL_IDENTITY
from tests.boards import board, row


def defended(bpda: str, eot: int, adv_auroc: float) -> list[dict]:
    """A jpeg-defended pgd row with ``bpda``/``eot`` and its noise control (which keeps the defaults)."""
    common = {"defense": "jpeg", "eps": "8/255"}
    return [row(attack="noise", surrogate="none", adv_auroc=0.6, bpda="none", eot_samples=1, **common),
            row(attack="pgd", surrogate="score", white_box=True, adv_auroc=adv_auroc, bpda=bpda, eot_samples=eot,
                **common)]


@pytest.mark.parametrize("bpda, eot", [("identity", 1), ("off", 1), ("none", 4), ("identity", 4)])
def test_the_site_ranking_shows_the_noise_control_whatever_the_attacks_bpda_and_eot(bpda, eot):
    [line] = ranking(board(*defended(bpda, eot, 0.3))).query("threat == 'any'").to_dict("records")
    assert line["noise_adv_auroc_mean"] == pytest.approx(0.6)


def test_the_audit_compares_an_eot_attack_with_its_noise_control():
    [check] = [r for r in run_checks(board(*defended("identity", 4, 0.7))) if r.check == "attack-vs-noise"]
    assert check.compared == 1 and "noise control 0.600000" in check.violations[0].detail


def test_only_gradient_settings_are_left_out_of_the_control_match():
    assert set(MODEL_IDENTITY) - set(CONTROL_IDENTITY) == {"bpda", "eot_samples"}
    assert set(fields_with("config", gradient=True)) == {"bpda", "eot_samples"}
    assert {"round_8bit", "norm", "defense", "eps"} & set(CONTROL_IDENTITY) == {"round_8bit", "norm", "defense"}
