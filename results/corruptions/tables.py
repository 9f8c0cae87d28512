"""The README's corruption table, generated from the committed leaderboard beside this script.

Run ``.venv/bin/python results/corruptions/tables.py`` to print the section; ``tests/test_readme_numbers.py`` checks
that README.md holds exactly this text. The leaderboard is filled by ``results/corruptions/run.sh``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from robustad.results.corruptions import mean_over_corruptions
from robustad.results.frame import LATER_DEFAULTS, numeric
from robustad.results.leaderboard import read_rows

HERE = Path(__file__).resolve().parent
LEADERBOARD = HERE / "leaderboard.csv"
COMMIT = HERE / "commit.txt"
DETECTORS = ["anomalydino", "patchcore", "subspacead"]


def load(path: Path = LEADERBOARD) -> pd.DataFrame:
    rows = pd.DataFrame(read_rows(path))
    for name, default in LATER_DEFAULTS.items():
        rows[name] = rows[name].replace("", default)
    for column in ("adv_auroc", "clean_auroc", "eps_value", "n_eval", "seed"):
        rows[column] = numeric(rows, column)
    return rows[rows["calibrator"] == "platt"]


def interval(value: float, low: float, high: float) -> str:
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def mean_table(summary: pd.DataFrame, severities: list[int]) -> list[str]:
    """Per detector: the clean AUROC and the mean over corruptions at each severity, with the mean interval."""
    lines = ["| detector | clean | " + " | ".join(f"severity {s}" for s in severities) + " |",
             "|" + " --- |" * (2 + len(severities))]
    for detector in DETECTORS:
        own = summary[summary["detector"] == detector].set_index("severity")
        values = [interval(*own.loc[s, ["auroc_mean", "auroc_ci_low", "auroc_ci_high"]]) if s in own.index else ""
                  for s in [0, *severities]]
        lines.append(f"| {detector} | " + " | ".join(values) + " |")
    return lines


def corruption_table(rows: pd.DataFrame, severities: list[int]) -> list[str]:
    """Per corruption and detector: the AUROC at each severity, mean over seeds, as ``s1 / s3 / s5``."""
    lines = ["| corruption | " + " | ".join(DETECTORS) + " |", "|" + " --- |" * (1 + len(DETECTORS))]
    for corruption in dict.fromkeys(rows["corruption"]):
        values = []
        for detector in DETECTORS:
            own = rows[(rows["corruption"] == corruption) & (rows["detector"] == detector)]
            per = own.groupby("eps_value")["adv_auroc"].mean()
            values.append(" / ".join(f"{per[s]:.3f}" if s in per.index else "-" for s in severities))
        lines.append(f"| {corruption} | " + " | ".join(values) + " |")
    return lines


def section(rows: pd.DataFrame) -> str:
    commit = ", ".join(dict.fromkeys(COMMIT.read_text().split())) if COMMIT.exists() else "unknown"
    summary = mean_over_corruptions(rows)
    complete = summary[summary["corruptions"] == summary["corruptions"].max()]
    done = [set(complete.loc[complete["detector"] == d, "severity"]) for d in DETECTORS]
    severities = sorted(int(s) for s in set.intersection(*done) if s > 0)  # those every detector finished
    partial = sorted(int(s) for s in set.union(*done) - set.intersection(*done))
    finished = {s: [d for d, own in zip(DETECTORS, done) if s in own] for s in partial}
    extra = "".join(f"; severity {s} finished for {', '.join(finished[s])} only, its rows are in the leaderboard"
                    for s in partial)
    rows = rows[rows["eps_value"].isin(severities)]
    seeds = sorted(int(s) for s in rows["seed"].unique())
    n_eval = int(rows["n_eval"].iloc[0])
    names = ", ".join(f"`{name}`" for name in dict.fromkeys(rows["corruption"]))
    text = [
        f"Real MVTec AD bottle images, `efficientnet_lite0` at 224 px (PatchCore on its stages `layer2,layer3`), "
        f"1-shot, seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}, {n_eval} eval images, under "
        f"`--norm corruption` with the {summary['corruptions'].max()} corruptions {names} at severities "
        f"{', '.join(map(str, severities))} (a subset of 1-5: the shared 2-core machine did not allow the whole "
        f"grid in this session{extra}). Every number comes from rows of `results/corruptions/leaderboard.csv`, made at "
        f"commit {commit} by `results/corruptions/run.sh` with 1 torch thread and turned into these tables by "
        "`results/corruptions/tables.py`. The first table is `robustad.results.corruptions.mean_over_corruptions`: "
        "the image AUROC averaged over the corruptions, with the mean of their 95 % bootstrap intervals over eval "
        "images in brackets; *clean* is severity 0. The second gives each corruption's AUROC at severities "
        f"{' / '.join(map(str, severities))}.",
        "",
        *mean_table(complete, severities),
        "",
        *corruption_table(rows, severities),
    ]
    return "\n".join(text)


if __name__ == "__main__":
    print(section(load()))
