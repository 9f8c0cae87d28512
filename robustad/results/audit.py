"""``robustad audit``: the sanity checks of an attack evaluation (Carlini et al. 2019, arXiv 1902.06705;
AutoAttack's checks; docs/protocol.md section 4) on leaderboard rows. A benchmark reports a violated check; it does not
hide it.

Rows are compared only when they score the same images the same way (``frame.model_key``). AUROC does not depend
on the calibrator, so rows that differ only in the calibrator count once (``frame.one_per_calibrator``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import pandas as pd

from robustad.errors import RobustadError
from robustad.records import NO_ATTACK
from robustad.results.frame import (
    MODEL_IDENTITY,
    MODEL_OPTION_KINDS,
    SCORED_MODEL,
    SMOOTHING_DRAWS,
    attack_names,
    describe,
    fractions,
    is_attack,
    key,
    numeric,
    one_per_calibrator,
    text,
    with_noise_control,
)
from robustad.results.ranges import impossible

TOLERANCE = 1e-9
ZERO_GRAD_THRESHOLD = 0.5
WORST_CASE = "worstcase"


@dataclass(frozen=True)
class Violation:
    """One failed check: which, the numbers, and the configuration it failed for."""

    check: str
    detail: str
    where: str

    def line(self) -> str:
        return f"FAIL {self.check}: {self.detail} | {self.where}"


@dataclass(frozen=True)
class CheckResult:
    """A check, how many comparisons it made (0 = nothing to compare) and what failed."""

    check: str
    compared: int
    violations: list[Violation] = field(default_factory=list)


def audit(rows: pd.DataFrame, *, tolerance: float = TOLERANCE,
          zero_grad_threshold: float = ZERO_GRAD_THRESHOLD) -> list[Violation]:
    """Every violated check in the rows (empty list: all pass)."""
    results = run_checks(rows, tolerance=tolerance, zero_grad_threshold=zero_grad_threshold)
    return [violation for result in results for violation in result.violations]


def run_checks(rows: pd.DataFrame, *, tolerance: float = TOLERANCE,
               zero_grad_threshold: float = ZERO_GRAD_THRESHOLD) -> list[CheckResult]:
    """Each check with its count of comparisons and its violations; an AUROC is "higher" when it exceeds the
    other by more than ``tolerance``."""
    if not 0 <= tolerance < 1:  # AUROCs lie in [0, 1]: with a tolerance of 1 or more (or NaN) nothing can fail
        raise RobustadError(f"--tolerance {tolerance}: expected a number in [0, 1) (a difference of AUROCs)")
    if not 0 <= zero_grad_threshold <= 1:
        raise RobustadError(f"--zero-grad-threshold {zero_grad_threshold}: expected a share in [0, 1]")
    ranges, impossible_rows = _declared_ranges(rows)
    unique = one_per_calibrator(rows.drop(index=impossible_rows)).assign(_auroc=lambda f: numeric(f, "adv_auroc"))
    return [ranges, _worst_case_weakens_with_eps(unique, tolerance), _white_box_weaker_than_transfer(unique, tolerance),
            _attack_weaker_than_noise(unique, tolerance), _gradient_masking(unique, zero_grad_threshold),
            _gradient_free_beats_gradient(unique, tolerance), _randomized_defense_without_eot(unique),
            _certificate_above_attack(unique, tolerance)]


def _declared_ranges(rows: pd.DataFrame) -> tuple[CheckResult, list]:
    """Every value within its declared range (``results.ranges``); the other checks compare only the rows that
    pass, since an impossible number proves nothing about an attack."""
    check = "declared-ranges"
    found = impossible(rows)
    violations = [Violation(check, item.line(), _where(rows.loc[item.index])) for item in found]
    return CheckResult(check, len(rows), violations), list(dict.fromkeys(item.index for item in found))


def _worst_case_weakens_with_eps(rows: pd.DataFrame, tolerance: float) -> CheckResult:
    """A larger ball contains the smaller one, so the worst case at a larger eps must not score a higher AUROC."""
    check, compared, found = "worst-case-eps", 0, []
    part = rows[attack_names(rows) == WORST_CASE].assign(_eps=lambda frame: numeric(frame, "eps_value"))
    part = part.dropna(subset=["_auroc", "_eps"])
    series = key(part, (*MODEL_IDENTITY, "attack", "surrogate", "members"),
                 (*MODEL_OPTION_KINDS, "surrogate", "attack"))
    for _, group in part.groupby(series, sort=False):
        ordered = [row for _, row in group.sort_values("_eps").iterrows()]
        for smaller, larger in pairwise(ordered):
            compared += 1
            if larger["_auroc"] > smaller["_auroc"] + tolerance:
                found.append(Violation(
                    check, f"{larger['attack']} via {larger['surrogate']}: adv_auroc {larger['_auroc']:.6f} at eps "
                           f"{larger['eps']} > {smaller['_auroc']:.6f} at eps {smaller['eps']}", _where(larger)))
    return CheckResult(check, compared, found)


def _white_box_weaker_than_transfer(rows: pd.DataFrame, tolerance: float) -> CheckResult:
    """A white-box gradient (a surrogate whose row says ``white_box``) must do at least as well as a transferred
    one; which is which is read from the rows, not from surrogate names."""
    check, compared, found = "white-box-vs-transfer", 0, []
    part = rows[is_attack(rows)].dropna(subset=["_auroc"])
    pairs = key(part, (*MODEL_IDENTITY, "attack", "eps"), (*MODEL_OPTION_KINDS, "attack"))
    for _, group in part.groupby(pairs, sort=False):
        white_box = text(group, "white_box")
        for _, white in group[white_box == "True"].iterrows():
            for _, transfer in group[white_box == "False"].iterrows():
                compared += 1
                if white["_auroc"] > transfer["_auroc"] + tolerance:
                    found.append(Violation(
                        check, f"{white['attack']} at eps {white['eps']}: adv_auroc {white['_auroc']:.6f} via "
                               f"{white['surrogate']} (white-box) > {transfer['_auroc']:.6f} via "
                               f"{transfer['surrogate']} (transfer)", _where(white)))
    return CheckResult(check, compared, found)


def _attack_weaker_than_noise(rows: pd.DataFrame, tolerance: float) -> CheckResult:
    """An attack must lower the AUROC at least as much as random noise of the same size."""
    check, found = "attack-vs-noise", []
    paired = with_noise_control(rows)
    paired = paired.assign(_noise=numeric(paired, "noise_adv_auroc")).dropna(subset=["_auroc", "_noise"])
    for _, row in paired[paired["_auroc"] > paired["_noise"] + tolerance].iterrows():
        found.append(Violation(
            check, f"{row['attack']} via {row['surrogate']} at eps {row['eps']}: adv_auroc {row['_auroc']:.6f} > "
                   f"noise control {row['_noise']:.6f}", _where(row)))
    return CheckResult(check, len(paired), found)


def _gradient_masking(rows: pd.DataFrame, threshold: float) -> CheckResult:
    """Most images getting an exactly zero gradient means the attack was blind, not the detector robust."""
    check, found = "gradient-masking", []
    part = rows[is_attack(rows)].assign(_share=lambda frame: numeric(frame, "zero_grad_share"))
    part = part.dropna(subset=["_share"])
    for _, row in part[part["_share"] > threshold].iterrows():
        found.append(Violation(
            check, f"{row['attack']} via {row['surrogate']} at eps {row['eps']}: zero_grad_share "
                   f"{row['_share']:.3f} > {threshold}", _where(row)))
    return CheckResult(check, len(part), found)


def _gradient_free_beats_gradient(rows: pd.DataFrame, tolerance: float) -> CheckResult:
    """A gradient-free attack (one that took no gradient: ``zero_grad_share`` empty, Square) beating every gradient
    attack of the same model, defense and eps means the gradients are masked (a defense that lies about being
    differentiable, or a broken BPDA), not that the model is robust to them (Athalye et al. 2018)."""
    check, compared, found = "gradient-free-beats-gradient", 0, []
    attacks = rows[is_attack(rows) & (text(rows, "members") == "")]
    attacks = attacks.assign(_share=numeric(attacks, "zero_grad_share")).dropna(subset=["_auroc"])
    groups = key(attacks, (*MODEL_IDENTITY, "eps"), MODEL_OPTION_KINDS)
    for _, group in attacks.groupby(groups, sort=False):
        gradient, free = group[group["_share"].notna()], group[group["_share"].isna()]
        if gradient.empty or free.empty:
            continue
        compared += 1
        best_free = free.loc[free["_auroc"].idxmin()]
        if best_free["_auroc"] < gradient["_auroc"].min() - tolerance:
            found.append(Violation(
                check, f"{best_free['attack']} (gradient-free) at eps {best_free['eps']}: adv_auroc "
                       f"{best_free['_auroc']:.6f} < {gradient['_auroc'].min():.6f}, the best of "
                       f"{', '.join(sorted(set(text(gradient, 'attack'))))} (gradient attacks)", _where(best_free)))
    return CheckResult(check, compared, found)


def _randomized_defense_without_eot(rows: pd.DataFrame) -> CheckResult:
    """An attack on a randomized defense with one draw per gradient step follows one random draw, not the
    defense: its numbers overstate the defense (EOT, Athalye et al. 2018)."""
    check, found = "randomized-defense-eot", []
    part = rows[is_attack(rows) & (text(rows, "defense_randomized") == "True") & (text(rows, "white_box") != "")]
    part = part.assign(_eot=numeric(part, "eot_samples"))
    for _, row in part[part["_eot"] <= 1].iterrows():
        found.append(Violation(
            check, f"{row['attack']} via {row['surrogate']} at eps {row['eps']} on the randomized defense "
                   f"{row['defense']} used eot_samples {int(row['_eot'])}; expected more than 1 draw per step",
            _where(row)))
    return CheckResult(check, len(part), found)


def _certificate_above_attack(rows: pd.DataFrame, tolerance: float) -> CheckResult:
    """A certified AUROC at L2 radius r bounds the smoothed detector's AUROC under every L2 perturbation of norm at
    most r from below, so an L2 attack (or noise) of eps <= r on the same smoothed detector must not reach a lower
    AUROC: if one does, the certificate is unsound or the attack broke its ball. One comparison per certified row,
    against the lowest such AUROC reported on the same estimator: as many reporting draws (``report_draws``; rows
    written before it reported on their ``samples``), which no attack has queried. The defense's draw options are
    left out of the pairing (an attack selects on few draws, a certificate wants many); the check is strict."""
    check, compared, found = "certified-vs-attack", 0, []
    certified = rows.assign(_cert=numeric(rows, "cert_auroc"), _radius=fractions(rows, "cert_radius"))
    certified = certified.dropna(subset=["_cert", "_radius"])
    attacked = rows[(attack_names(rows) != NO_ATTACK) & (attack_names(rows) != "") & (text(rows, "norm") == "l2")]
    attacked = attacked.assign(_eps=numeric(attacked, "eps_value")).dropna(subset=["_auroc", "_eps"])
    detector = key(attacked, SCORED_MODEL, MODEL_OPTION_KINDS, ignore=SMOOTHING_DRAWS) + _draws(attacked)
    certified_detector = key(certified, SCORED_MODEL, MODEL_OPTION_KINDS, ignore=SMOOTHING_DRAWS) + _draws(certified)
    for index, row in certified.iterrows():
        same = attacked[(detector == certified_detector[index])
                        & (attacked["_eps"] <= row["_radius"] * (1 + 1e-12))]
        if same.empty:
            continue
        compared += 1
        lowest = same.loc[same["_auroc"].idxmin()]
        if row["_cert"] > lowest["_auroc"] + tolerance:
            found.append(Violation(
                check, f"cert_auroc {row['_cert']:.6f} at L2 radius {row['cert_radius']} (cert_alpha "
                       f"{row['cert_alpha']}) > adv_auroc {lowest['_auroc']:.6f} of {lowest['attack']} "
                       f"via {lowest['surrogate']} at L2 eps {lowest['eps']}: an unsound certificate or a broken "
                       "attack", _where(row)))
    return CheckResult(check, compared, found)


def _draws(rows: pd.DataFrame) -> pd.Series:
    """The reporting draws behind each row's scores (``report_draws``; ``defense_samples`` for older rows)."""
    draws = numeric(rows, "report_draws").fillna(numeric(rows, "defense_samples"))
    return pd.Series(["\x1f" + ("" if pd.isna(value) else str(int(value))) for value in draws], index=rows.index,
                     dtype=object)


def _where(row: pd.Series) -> str:
    return describe(row, MODEL_IDENTITY)
