"""``robustad audit``: each sanity check flags a hand-made leaderboard that violates it, and only that one."""

from __future__ import annotations

import pytest

from robustad.errors import RobustadError
from robustad.results.audit import audit, run_checks
from tests.boards import board, row, run_robustad, write_board

# (attack, surrogate, eps) -> adv_auroc of a leaderboard that passes every check (seed 0, one model).
PASSING = {
    ("pgd", "score", "2/255"): 0.60, ("pgd", "linear", "2/255"): 0.80, ("noise", "none", "2/255"): 0.95,
    ("pgd", "score", "8/255"): 0.30, ("pgd", "linear", "8/255"): 0.70, ("noise", "none", "8/255"): 0.90,
    ("worstcase", "score", "2/255"): 0.55, ("worstcase", "score", "8/255"): 0.20,
    ("square", "score", "2/255"): 0.90, ("square", "score", "8/255"): 0.85,
}
GRADIENT_FREE = {"square", "noise"}


def rows_of(changes: dict | None = None, calibrators=("platt", "none")) -> list[dict[str, str]]:
    """The passing leaderboard, every cell once per calibrator, with ``changes[(attack, surrogate, eps)]`` applied."""
    changes = changes or {}
    out = []
    for (attack, surrogate, eps), auroc in PASSING.items():
        values = {"attack": attack, "surrogate": surrogate, "eps": eps, "adv_auroc": auroc,
                  "zero_grad_share": None if attack in GRADIENT_FREE else 0.1,
                  "members": "pgd+fgsm" if attack == "worstcase" else None,
                  "white_box": {"score": True, "linear": False}.get(surrogate)}
        values.update(changes.get((attack, surrogate, eps), {}))
        out += [row(calibrator=calibrator, **values) for calibrator in calibrators]
    return out


def test_a_gradient_free_attack_beating_every_gradient_attack_is_gradient_masking():
    masked = {("square", "score", "8/255"): {"adv_auroc": 0.25}}  # below pgd's 0.30 and linear's 0.70
    [violation] = [v for v in audit(board(*rows_of(masked))) if v.check == "gradient-free-beats-gradient"]
    assert "square (gradient-free) at eps 8/255: adv_auroc 0.250000 < 0.300000" in violation.detail
    assert "pgd (gradient attacks)" in violation.detail


def test_a_defense_claiming_a_gradient_it_lacks_is_caught_from_its_rows():
    """A defense declared differentiable whose gradients are zero: the masking checks fire on its rows."""
    lying = {key: {"defense": "liar", "defense_differentiable": True, "bpda": "none",
                   **({"zero_grad_share": 1.0, "adv_auroc": 0.99} if key[0] not in GRADIENT_FREE
                      and key[0] != "worstcase" else {})} for key in PASSING}
    checks = {v.check for v in audit(board(*rows_of(lying)))}
    assert {"gradient-masking", "gradient-free-beats-gradient"} <= checks


def test_a_randomized_defense_attacked_with_one_eot_draw_is_flagged():
    rows = rows_of({key: {"defense": "smoothing", "defense_randomized": True, "eot_samples": 1 if key[0] == "pgd"
                          else 8} for key in PASSING})
    violations = [v for v in audit(board(*rows)) if v.check == "randomized-defense-eot"]
    assert len(violations) == 4 and all("pgd via" in v.detail and "eot_samples 1" in v.detail for v in violations)
    adaptive = rows_of({key: {"defense": "smoothing", "defense_randomized": True, "eot_samples": 8}
                        for key in PASSING})
    assert [v for v in audit(board(*adaptive)) if v.check == "randomized-defense-eot"] == []


def test_white_box_is_read_from_the_rows_not_from_surrogate_names():
    renamed = [{**r, "surrogate": {"score": "mine", "linear": "theirs"}.get(r["surrogate"], r["surrogate"])}
               for r in rows_of({("pgd", "score", "2/255"): {"adv_auroc": 0.85}})]
    [violation] = [v for v in audit(board(*renamed)) if v.check == "white-box-vs-transfer"]
    assert "via mine (white-box) > 0.800000 via theirs (transfer)" in violation.detail
    unmarked = [{**r, "white_box": ""} for r in rows_of({("pgd", "score", "2/255"): {"adv_auroc": 0.85}})]
    assert [r.compared for r in run_checks(board(*unmarked)) if r.check == "white-box-vs-transfer"] == [0]


def test_a_passing_leaderboard_passes_and_every_check_compared_something():
    results = run_checks(board(*rows_of(calibrators=("platt", "none", "isotonic"))))
    assert [v for r in results for v in r.violations] == []
    # worst case: one eps step; white-box vs transfer: pgd at 2 eps; noise: 8 attack cells; masking: 6 gradient
    # attack cells; gradient-free vs gradient: square at 2 eps; no randomized defense
    assert {r.check: r.compared for r in results} == {
        "declared-ranges": 30, "worst-case-eps": 1, "white-box-vs-transfer": 2, "attack-vs-noise": 8,
        "gradient-masking": 6,
        "gradient-free-beats-gradient": 2, "randomized-defense-eot": 0, "certified-vs-attack": 0}


@pytest.mark.parametrize("changes, check, numbers", [
    ({("worstcase", "score", "8/255"): {"adv_auroc": 0.58}}, "worst-case-eps",
     "adv_auroc 0.580000 at eps 8/255 > 0.550000 at eps 2/255"),
    ({("pgd", "score", "2/255"): {"adv_auroc": 0.85}}, "white-box-vs-transfer",
     "adv_auroc 0.850000 via score (white-box) > 0.800000 via linear (transfer)"),
    ({("pgd", "linear", "8/255"): {"adv_auroc": 0.93}}, "attack-vs-noise",
     "pgd via linear at eps 8/255: adv_auroc 0.930000 > noise control 0.900000"),
    ({("pgd", "score", "8/255"): {"zero_grad_share": 0.75}}, "gradient-masking",
     "pgd via score at eps 8/255: zero_grad_share 0.750 > 0.5"),
])
def test_each_check_flags_its_violation_once_whatever_the_calibrators(changes, check, numbers):
    [violation] = audit(board(*rows_of(changes, calibrators=("platt", "none", "isotonic", "temperature"))))
    assert violation.check == check
    assert numbers in violation.detail
    assert "dataset=mvtec category=bottle shots=1 seed=0" in violation.where
    assert violation.line().count("\n") == 0 and check in violation.line()


@pytest.mark.parametrize("other", [
    {"seed": "1"}, {"round_8bit": "True"}, {"precision": "float16"}, {"calib_fraction": "0.5"},
    {"data_id": "bottle-other"}, {"backbone": "dinov2_vits14"}, {"weights": "random"},
    {"options": '{"detector.anomalydino.masking": false}'},
])
def test_rows_that_score_other_images_or_otherwise_are_not_compared(other):
    # white-box far above transfer and noise, but on another configuration: nothing to compare it with
    changes = {("pgd", "score", "2/255"): {"adv_auroc": 0.99, **other}}
    assert audit(board(*rows_of(changes))) == []


def test_the_noise_control_of_another_calibrator_counts_and_attack_options_do_not_matter_for_it():
    rows = [row(attack="noise", surrogate="none", calibrator="none", adv_auroc=0.9),
            row(attack="pgd", surrogate="score", calibrator="platt", adv_auroc=0.95,
                options='{"attack.pgd.steps": 20}')]
    [violation] = audit(board(*rows))
    assert violation.check == "attack-vs-noise"


def test_worst_cases_of_other_members_are_not_compared_across_eps():
    changes = {("worstcase", "score", "8/255"): {"adv_auroc": 0.58, "members": "pgd"}}
    assert audit(board(*rows_of(changes))) == []


def test_tolerance_and_masking_threshold():
    equal_up_to_rounding = {("pgd", "score", "2/255"): {"adv_auroc": 0.80 + 1e-12}}
    assert audit(board(*rows_of(equal_up_to_rounding))) == []
    assert [v.check for v in audit(board(*rows_of(equal_up_to_rounding)), tolerance=0.0)] == ["white-box-vs-transfer"]
    masked = {("pgd", "linear", "2/255"): {"zero_grad_share": 0.6},
              ("noise", "none", "2/255"): {"zero_grad_share": 1.0}}  # a control has no gradient to mask
    assert [v.check for v in audit(board(*rows_of(masked)))] == ["gradient-masking"]
    assert audit(board(*rows_of(masked)), zero_grad_threshold=0.7) == []


def test_undefined_values_are_not_compared_and_text_in_a_number_column_is_an_error():
    undefined = {("noise", "none", "8/255"): {"adv_auroc": None}, ("pgd", "linear", "8/255"): {"adv_auroc": 0.93}}
    assert audit(board(*rows_of(undefined))) == []
    assert [r.compared for r in run_checks(board())] == [0] * 8
    with pytest.raises(RobustadError, match="adv_auroc: 'high' is not a number"):
        audit(board(*rows_of({("pgd", "linear", "8/255"): {"adv_auroc": "high"}})))


def test_cli_prints_one_line_per_failure_and_exits_1(tmp_path, monkeypatch, capsys):
    path = write_board(tmp_path / "board.csv", rows_of({("pgd", "linear", "8/255"): {"adv_auroc": 0.93}}))
    code, out, err = run_robustad(monkeypatch, capsys, "audit", path)
    assert code == 1, err
    lines = out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("FAIL attack-vs-noise: pgd via linear at eps 8/255")
    assert lines[1].startswith("20 rows, 1 failed checks")
    code, out, err = run_robustad(monkeypatch, capsys, "audit", path, "--where", "eps=2/255")
    assert (code, err) == (0, "") and out.startswith("10 rows, all checks pass")


@pytest.mark.parametrize("content", [None, b"", ",".join(["cell_hash", "dataset"]).encode() + b"\n",
                                     b"\x89PNG\r\n\x1a\n\x00\xff\xfe", b"a,b\n1,2\n"])
def test_cli_bad_missing_or_empty_file_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, content):
    path = tmp_path / "board.csv"
    if content is not None:
        path.write_bytes(content)
    code, out, err = run_robustad(monkeypatch, capsys, "audit", path)
    assert code == 2 and out == ""
    assert err.startswith("robustad: error: ") and err.count("\n") == 1 and str(path) in err


def test_cli_header_only_leaderboard_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    path = write_board(tmp_path / "board.csv", [])
    code, out, err = run_robustad(monkeypatch, capsys, "audit", path)
    assert (code, out) == (2, "")
    assert err == f"robustad: error: leaderboard {path} has no rows; run `robustad bench` first\n"


def smoothed(**values: object) -> dict[str, str]:
    """A row of the smoothing defense (sigma 0.25, 100 draws) on the base model."""
    return row(defense="smoothing", defense_randomized=True, eot_samples=8,
               options='{"defense.smoothing": {"samples": 100, "sigma": 0.25}}', **values)


def certified_board(cert_at_half: float, attack_at_half: float, calibrators=("platt", "none")) -> list[dict]:
    """Certified rows at L2 radii 1/4 and 1/2 beside L2 attacks (noise and pgd) at eps 1/4 and 1/2 on the same
    smoothed detector, and an L-inf pgd row and another sigma's attack that must not be compared."""
    rows = []
    for calibrator in calibrators:
        rows += [smoothed(attack="none", surrogate="none", eps="", cert_radius="1/4", cert_auroc=0.70,
                          cert_alpha=0.001, calibrator=calibrator),
                 smoothed(attack="none", surrogate="none", eps="", cert_radius="1/2", cert_auroc=cert_at_half,
                          cert_alpha=0.001, calibrator=calibrator),
                 smoothed(attack="noise", surrogate="none", eps="1/4", norm="l2", adv_auroc=0.90,
                          calibrator=calibrator),
                 smoothed(attack="pgd", eps="1/4", norm="l2", adv_auroc=0.75, zero_grad_share=0.1,
                          calibrator=calibrator),
                 smoothed(attack="pgd", eps="1/2", norm="l2", adv_auroc=attack_at_half, zero_grad_share=0.1,
                          calibrator=calibrator),
                 smoothed(attack="pgd", eps="8/255", adv_auroc=0.10, zero_grad_share=0.1, calibrator=calibrator),
                 row(defense="smoothing", defense_randomized=True, eot_samples=8, attack="pgd", eps="1/2",
                     norm="l2", adv_auroc=0.05, zero_grad_share=0.1, calibrator=calibrator,
                     options='{"defense.smoothing": {"samples": 100, "sigma": 0.5}}')]
    return rows


def test_a_certified_auroc_above_an_l2_attack_on_the_same_smoothed_detector_is_flagged():
    results = {r.check: r for r in run_checks(board(*certified_board(0.60, 0.65)))}
    # radius 1/4: pgd at 1/4 (0.75) is the lowest within it; radius 1/2: pgd at 1/2 (0.65); L-inf rows, rows of
    # another sigma and the other calibrators are never compared
    assert results["certified-vs-attack"].compared == 2 and results["certified-vs-attack"].violations == []
    [violation] = [v for v in audit(board(*certified_board(0.60, 0.55, ("platt", "none", "isotonic"))))
                   if v.check == "certified-vs-attack"]
    assert ("cert_auroc 0.600000 at L2 radius 1/2 (cert_alpha 0.001) > adv_auroc 0.550000 of pgd via score at "
            "L2 eps 1/2: an unsound certificate or a broken attack") in violation.detail
    assert "seed=0" in violation.where and "\n" not in violation.line()


def test_a_certificate_is_compared_with_every_attack_inside_its_radius():
    rows = certified_board(0.60, 0.65)
    rows[3] = {**rows[3], "adv_auroc": "0.50"}  # pgd at 1/4 below both certificates: 1/4 lies inside 1/2 too
    found = [v.detail for v in audit(board(*rows)) if v.check == "certified-vs-attack"]
    assert len(found) == 2 and all("adv_auroc 0.500000 of pgd via score at L2 eps 1/4" in d for d in found)
    assert {d.split(" (cert_alpha")[0] for d in found} == {"cert_auroc 0.700000 at L2 radius 1/4",
                                                          "cert_auroc 0.600000 at L2 radius 1/2"}


def test_certificates_from_many_draws_are_compared_with_attacks_through_few_draws_of_the_same_sigma():
    few_draws = '{"defense.smoothing": {"samples": 4, "sigma": 0.25}}'
    rows = [r if r["attack"] == "none" else {**r, "options": r["options"].replace('"samples": 100', '"samples": 4')}
            for r in certified_board(0.60, 0.55)]
    assert sum(r["options"] == few_draws for r in rows) == 8
    # the sigma-0.5 attack (adv_auroc 0.05) stays another detector; one violation for both calibrators, as above
    [violation] = [v for v in audit(board(*rows)) if v.check == "certified-vs-attack"]
    assert "cert_auroc 0.600000 at L2 radius 1/2" in violation.detail
    assert "adv_auroc 0.550000 of pgd via score at L2 eps 1/2" in violation.detail


@pytest.mark.parametrize(("attack_samples", "report_draws", "cert", "compared", "flagged"), [
    ("4", "100", 0.57, 1, False),  # selected on 4 draws, reported on 100 as the certificate: compared, strictly
    ("4", "100", 0.5801, 1, True),  # no head start: above the attack's AUROC is a violation
    ("4", "", 0.70, 0, False),  # an older row reported on its 4 draws: another estimator, not compared
    ("4", "16", 0.70, 0, False),  # reported on 16 draws: another estimator, not compared
])
def test_a_certificate_is_compared_only_with_attacks_reported_on_as_many_draws(attack_samples, report_draws, cert,
                                                                               compared, flagged):
    options = '{{"defense.smoothing": {{"samples": {}, "sigma": 0.25}}}}'
    smoothing = {"defense": "smoothing", "defense_randomized": True, "eot_samples": 8}
    rows = [row(**smoothing, attack="none", surrogate="none", eps="", cert_radius="1/2", cert_auroc=cert,
                cert_alpha=0.001, clean_auroc=0.90, defense_samples=100, report_draws=100,
                options=options.format(100)),
            row(**smoothing, attack="pgd", eps="1/2", norm="l2", adv_auroc=0.58, clean_auroc=0.85, zero_grad_share=0.1,
                defense_samples=attack_samples, report_draws=report_draws, options=options.format(attack_samples))]
    results = {r.check: r for r in run_checks(board(*rows))}
    assert results["certified-vs-attack"].compared == compared
    assert bool(results["certified-vs-attack"].violations) == flagged
