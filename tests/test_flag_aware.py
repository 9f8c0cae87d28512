"""Flag-aware PGD and APGD on a constructed case: the plain attack crosses the decision boundary but its flag catches
it; the flag-aware attack crosses it unflagged. And, in a run, rows record the flag an attack evades."""

from __future__ import annotations

import pytest
import torch
from robustad_plugins.attacks import APGD, PGD

from robustad import AttackTarget, FlagTarget
from robustad.engine.executors import run_local
from robustad.engine.progress import SilentReporter
from robustad.engine.request import build_cells
from robustad.engine.settings import RunSettings
from robustad.errors import RobustadError
from robustad.kit.threat import two_logit
from tests.test_flags import demo_request, registry  # noqa: F401 (a fixture)

EPS = 8 / 255
TAU = 24 * EPS  # the decision boundary: channels 1 and 2 alone give at most 2 * 16 eps, all three channels 64 eps


def score(images: torch.Tensor) -> torch.Tensor:
    """A linear detector: the sum over pixels of channel 0 (weight 2) and channels 1, 2 (weight 1) above 0.5."""
    weights = torch.tensor([2.0, 1.0, 1.0]).view(1, 3, 1, 1)
    return ((images - 0.5) * weights).sum(dim=(1, 2, 3))


def channel_zero(images: torch.Tensor) -> torch.Tensor:
    """The flag: the mean absolute change of channel 0 (what a perturbation along the score's gradient shows)."""
    return (images[:, 0] - 0.5).abs().mean(dim=(1, 2))


def target(aware: bool) -> AttackTarget:
    images = torch.full((1, 3, 4, 4), 0.5)
    return AttackTarget(
        images=images, labels=torch.zeros(1, dtype=torch.int64), eps=EPS, seeds=[0],
        model=lambda x: two_logit(score(x) - TAU), score=score, score_from_logit=lambda z: z + TAU,
        flag=FlagTarget("channel0", channel_zero, threshold=EPS / 8) if aware else None,
    )


@pytest.mark.parametrize("attack", [PGD(steps=10, random_start=False), APGD(steps=50)])
def test_plain_attack_crosses_flagged_and_the_flag_aware_one_crosses_unflagged(attack):
    plain = attack.perturb(target(aware=False))
    assert float(score(plain)) > TAU and float(channel_zero(plain)) > EPS / 8
    aware = attack.perturb(target(aware=True))
    assert float(score(aware)) > TAU and float(channel_zero(aware)) <= EPS / 8
    assert float((aware - 0.5).abs().max()) <= EPS + 1e-7


def test_rows_record_the_flag_an_attack_evades(registry, tmp_path):  # noqa: F811 (the fixture)
    request = demo_request(attack="pgd", flag="squeeze", options=["attack.pgd.flag_aware=squeeze",
                                                                     "attack.pgd.steps=4"])
    result = run_local(build_cells(request, registry), RunSettings(pixel_metrics=False, resamples=0),
                       tmp_path / "board.csv", registry, SilentReporter(), lambda cell, row: None)
    [row] = result.written
    assert row["flag_aware"] == "squeeze" and row["flag"] == "squeeze"


def test_a_flag_aware_attack_needs_a_white_box_surrogate_before_any_work(registry, tmp_path):  # noqa: F811
    request = demo_request(attack="pgd", surrogate="linear", options=["attack.pgd.flag_aware=squeeze",
                                                                        "attack.pgd.steps=2"])
    with pytest.raises(RobustadError, match="attack 'pgd' is flag-aware and needs a surrogate whose logit gives "
                                            "the detector's score .*--surrogate 'linear' is not one"):
        build_cells(request, registry)


def test_on_the_command_line_a_transfer_surrogate_for_a_flag_aware_attack_exits_2(tmp_path, monkeypatch, capsys):
    from tests.boards import run_robustad

    code, out, err = run_robustad(monkeypatch, capsys, "bench", "--surrogate", "linear", "--attack", "pgd", "--opt",
                                  "attack.pgd.flag_aware=squeeze", "--out", tmp_path / "b.csv")
    assert code == 2 and err.count("\n") == 1 and "--surrogate 'linear' is not one" in err and "cells" not in out


def test_a_worst_case_can_take_a_flag_aware_member(registry, tmp_path):  # noqa: F811 (the fixture)
    request = demo_request(attack="worstcase,pgd", flag="squeeze:bits", options=[
        "attack.worstcase.members=fgsm+pgd", "attack.pgd.flag_aware=squeeze:bits", "attack.pgd.steps=2"])
    result = run_local(build_cells(request, registry), RunSettings(pixel_metrics=False, resamples=0),
                       tmp_path / "board.csv", registry, SilentReporter(), lambda cell, row: None)
    assert not result.failures
    rows = {row["attack"]: row for row in result.written}
    assert rows["pgd"]["flag_aware"] == "squeeze:bits" and "flag_aware" not in rows["worstcase"]
    assert '"flag.squeeze:bits"' in rows["worstcase"]["options"]


def test_a_posterior_is_differentiated_by_its_central_difference():
    """Forward: the calibrator's own values; backward: (p(s + h) - p(s - h)) / 2h, close to the analytic slope of
    a smooth fit (Platt's a p (1 - p)) and non-zero across the steps of a step fit."""
    import numpy as np
    from scipy.special import expit

    from robustad.engine.flagging import _Smoothed

    scores = torch.linspace(-2, 2, 9, dtype=torch.float64, requires_grad=True)
    platt = _Smoothed.bind(lambda s: expit(1.5 * s + 0.2), 1e-4)
    probs = platt(scores)
    np.testing.assert_allclose(probs.detach().numpy(), expit(1.5 * scores.detach().numpy() + 0.2), rtol=0)
    (slope,) = torch.autograd.grad(probs.sum(), scores)
    p = probs.detach().numpy()
    np.testing.assert_allclose(slope.numpy(), 1.5 * p * (1 - p), rtol=1e-6)
    step = _Smoothed.bind(lambda s: (s > 0.05).astype(float), 0.5)
    (slope,) = torch.autograd.grad(step(scores).sum(), scores)
    assert slope.numpy()[4] == 1.0 and slope.numpy()[0] == 0.0  # a step within reach of 0 shows; -2 is too far


def test_an_entropy_aware_attack_runs_through_its_posterior(registry, tmp_path):  # noqa: F811 (the fixture)
    request = demo_request(attack="pgd", options=["attack.pgd.flag_aware=entropy", "attack.pgd.steps=3"])
    result = run_local(build_cells(request, registry), RunSettings(pixel_metrics=False, resamples=0),
                       tmp_path / "board.csv", registry, SilentReporter(), lambda cell, row: None)
    [row] = result.written
    assert row["flag_aware"] == "entropy" and row["flag"] == "entropy" and 0 <= row["flag_tpr"] <= 1


def test_an_opt_on_the_posterior_calibrator_reaches_the_calibrator_the_attack_uses(registry, tmp_path,  # noqa: F811
                                                                                  monkeypatch):
    import robustad.engine.flagging as flagging

    built = []
    create = flagging.Handle.create

    def recording(component, *args, **options):
        handle = create(component, *args, **options)
        if component.kind == "calibrator" and component.name == "temperature":
            built.append(handle.instance.targets)
        return handle

    aware = ["attack.pgd.flag_aware=entropy", "attack.pgd.steps=2", "attack.pgd.flag_posterior=temperature"]
    request = demo_request(attack="pgd", calib="platt", options=[*aware, "calibrator.temperature.targets=platt"])
    [cell] = build_cells(request, registry)
    assert '"calibrator.temperature": {"targets": "platt"}' in cell.options
    monkeypatch.setattr(flagging.Handle, "create", recording)  # the calibrators built while the cell runs
    result = run_local([cell], RunSettings(pixel_metrics=False, resamples=0), tmp_path / "board.csv", registry,
                       SilentReporter(), lambda cell, row: None)
    assert not result.failures and built == ["platt"]
    [plain] = build_cells(demo_request(attack="pgd", calib="platt", options=aware), registry)
    assert "calibrator.temperature" not in plain.options  # without --opt on it the key is as before
