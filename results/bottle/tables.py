"""The README's "What it measures" section, generated from the committed leaderboard beside this script.

Run ``.venv/bin/python results/bottle/tables.py`` to print the section; ``tests/test_readme_numbers.py`` checks that
README.md holds exactly this text, so the README cannot drift from the leaderboard. The leaderboard is filled by
``results/bottle/run.sh``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from robustad.results.aggregate import UNBOUNDED, mean_if_complete, std_if_complete
from robustad.results.frame import numeric
from robustad.results.leaderboard import read_rows
from robustad.twolevel import Z95, ratio_from_rows, seed_mean_bounds

HERE = Path(__file__).resolve().parent
LEADERBOARD = HERE / "leaderboard.csv"
COMMIT = HERE / "commit.txt"
SUITE = ["noise", "fgsm", "pgd", "apgd", "square", "worstcase"]
EPS = ["2/255", "8/255"]
CALIBRATORS = ["none", "platt", "isotonic", "temperature"]


def load(path: Path = LEADERBOARD) -> pd.DataFrame:
    rows = pd.DataFrame(read_rows(path))
    for column in rows.columns:
        if column.startswith(("clean_", "adv_", "flag_", "evasion_")) or column in ("eps_value", "seed"):
            rows[column] = numeric(rows, column)
    return rows


def cell(rows: pd.DataFrame, metric: str) -> str:
    """``value [low, high]`` of one row, or ``mean +- std [low, high]`` over several (seeds), undefined (nan) unless
    every row has the value, as ``robustad leaderboard`` aggregates: the interval is the two-level one of the mean
    over seeds, with the Wilson interval at 0 or 1 (``twolevel.seed_mean_bounds``)."""
    if rows.empty:
        return "n/a"
    values = rows[metric]
    n_eval = pd.to_numeric(rows["n_eval"]) if "n_eval" in rows else pd.Series(dtype=float)
    low, high = seed_mean_bounds(values, rows[f"{metric}_ci_low"], rows[f"{metric}_ci_high"],
                                 n_eff=float(n_eval.sum()) if len(n_eval) and n_eval.notna().all() else None,
                                 bounded=not metric.endswith(UNBOUNDED))
    if len(rows) == 1:
        return f"{values.iloc[0]:.3f} [{low:.2f}, {high:.2f}]"
    return f"{mean_if_complete(values):.3f} ± {std_if_complete(values):.3f} [{low:.2f}, {high:.2f}]"


def seeds_of(rows: pd.DataFrame) -> str:
    """The rows' seeds as the tables name them: ``0-2`` for a run of consecutive seeds, else ``0, 2``."""
    seeds = sorted(int(s) for s in rows["seed"].unique())
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def suite_table(rows: pd.DataFrame) -> list[str]:
    """Adversarial AUROC of every attack, seed 0, Platt (calibrators do not change AUROC)."""
    chosen = rows[(rows["seed"] == 0) & (rows["calibrator"] == "platt")]
    views = [("score", "False", "white-box"), ("score", "True", "white-box, 8-bit"), ("linear", "False", "linear head")]
    header = "| attack | " + " | ".join(f"{label} {eps}" for _, _, label in views for eps in EPS) + " |"
    lines = [header, "|" + " --- |" * (1 + len(views) * len(EPS))]
    for attack in SUITE:
        values = []
        for surrogate, rounded, _ in views:
            for eps in EPS:
                match = chosen[(chosen["attack"] == attack) & (chosen["eps"] == eps)
                               & (chosen["round_8bit"] == rounded)]
                if attack != "noise":
                    match = match[match["surrogate"] == surrogate]
                values.append(cell(match.head(1), "adv_auroc"))
        lines.append(f"| {attack} | " + " | ".join(values) + " |")
    return lines


def seeds_table(rows: pd.DataFrame) -> list[str]:
    """FGSM and PGD through both surrogates beside the noise control, seeds 0-2 (Platt rows)."""
    chosen = rows[(rows["calibrator"] == "platt") & (rows["round_8bit"] == "False")
                  & rows["attack"].isin(["noise", "fgsm", "pgd"]) & rows["seed"].isin([0, 1, 2])]
    lines = ["| attack | surrogate | " + " | ".join(f"adv AUROC {eps}" for eps in EPS) + " |",
             "| --- | --- |" + " --- |" * len(EPS)]
    for attack, surrogate in (("noise", "none"), ("fgsm", "linear"), ("fgsm", "score"), ("pgd", "linear"),
                              ("pgd", "score")):
        part = chosen[(chosen["attack"] == attack) & (chosen["surrogate"] == surrogate)]
        lines.append(f"| {attack} | {surrogate} | "
                     + " | ".join(cell(part[part["eps"] == eps], "adv_auroc") for eps in EPS) + " |")
    return lines


def calibration_table(rows: pd.DataFrame) -> list[str]:
    """Clean and white-box FGSM 8/255 calibration per calibrator, seeds 0-2."""
    attacked = rows[(rows["attack"] == "fgsm") & (rows["surrogate"] == "score") & (rows["eps"] == "8/255")
                    & (rows["round_8bit"] == "False") & rows["seed"].isin([0, 1, 2])]
    lines = ["| calibrator | clean ECE | FGSM 8/255 ECE | flag AUROC | flag TPR | evasion rate |",
             "| --- | --- | --- | --- | --- | --- |"]
    for calibrator in CALIBRATORS:
        part = attacked[attacked["calibrator"] == calibrator]
        lines.append(f"| {calibrator} | " + " | ".join(cell(part, m) for m in (
            "clean_ece", "adv_ece", "flag_auroc", "flag_tpr", "evasion_rate")) + " |")
    return lines


def noise_share(rows: pd.DataFrame) -> list[str]:
    """How much of the seed paper's attack (linear surrogate, FGSM) the noise control already explains: the ratio
    of the mean AUROC drops over seeds, mean(clean - noise) / mean(clean - FGSM), with its two-level interval
    (``twolevel.ratio_from_rows``: seeds resampled, each adversarial AUROC drawn with its row's standard error)."""
    chosen = rows[(rows["calibrator"] == "platt") & (rows["round_8bit"] == "False") & rows["seed"].isin([0, 1, 2])]
    parts = []
    for eps in EPS:
        drops = []
        for seed in (0, 1, 2):
            one = chosen[(chosen["seed"] == seed) & (chosen["eps"] == eps)]
            fgsm = one[(one["attack"] == "fgsm") & (one["surrogate"] == "linear")]
            noise = one[one["attack"] == "noise"]
            if fgsm.empty or noise.empty:
                continue
            clean = fgsm["clean_auroc"].iloc[0]
            drops.append([clean - noise["adv_auroc"].iloc[0], _se(noise), clean - fgsm["adv_auroc"].iloc[0],
                          _se(fgsm)])
        if drops:
            share = ratio_from_rows(*np.array(drops).T)
            parts.append(f"{100 * share.estimate:.0f} % [{100 * share.low:.0f}, {100 * share.high:.0f}] at {eps}")
    return parts


def _se(row: pd.DataFrame) -> float:
    """The row's image-level standard error of adv_auroc, from its 95 % interval."""
    return float(row["adv_auroc_ci_high"].iloc[0] - row["adv_auroc_ci_low"].iloc[0]) / (2 * Z95)


def section(rows: pd.DataFrame) -> str:
    clean = rows[rows["seed"] == 0]["clean_auroc"].iloc[0]
    commit = COMMIT.read_text().strip()
    lines = [
        "Real MVTec AD bottle images, `efficientnet_lite0` at 224 px, 1-shot; eval split of 59 images "
        f"(14 normal, 45 anomalous), clean eval AUROC {clean:.3f} at seed 0. Every number is a leaderboard row of "
        f"`results/bottle/leaderboard.csv`, made at commit {commit} with 2 torch threads by "
        "`results/bottle/run.sh` and turned into these tables by `results/bottle/tables.py`; brackets are 95 % "
        "bootstrap intervals over eval images; over seeds 0-2, ± the standard deviation and "
        "the 95 % interval of that mean in brackets "
        "(a two-level bootstrap over seeds and eval images, docs/protocol.md section 6; "
        "at 0 or 1 the Wilson score interval).",
        "",
        "**The attack suite** (seed 0, adversarial eval AUROC; `apgd` 20 steps, `square` 50 queries, `worstcase` per "
        "image over noise, fgsm, pgd, apgd and square):",
        "",
        *suite_table(rows),
        "",
        "**The seed paper's attack against the noise control** (seeds 0-2):",
        "",
        *seeds_table(rows),
        "",
        f"The noise control alone explains {', '.join(noise_share(rows))} of the AUROC drop that the seed paper's "
        "attack (linear surrogate, FGSM) causes: the ratio of the mean drops over seeds 0-2, mean(clean - noise) / "
        "mean(clean - FGSM), with its 95 % two-level bootstrap interval (seeds and images) in brackets.",
        "",
        "**Calibration and the entropy flag** (seeds 0-2; white-box FGSM at 8/255):",
        "",
        *calibration_table(rows),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(section(load()))
