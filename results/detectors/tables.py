"""The README's detector comparison, generated from the committed leaderboard beside this script.

Run ``.venv/bin/python results/detectors/tables.py`` to print the section; ``tests/test_readme_numbers.py`` checks
that README.md holds exactly this text. The leaderboard is filled by ``results/detectors/run.sh``.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pandas as pd

from robustad.results.frame import numeric
from robustad.results.leaderboard import read_rows

HERE = Path(__file__).resolve().parent
LEADERBOARD = HERE / "leaderboard.csv"
COMMIT = HERE / "commit.txt"
DETECTORS = ["anomalydino", "patchcore", "subspacead"]
EPS = ["2/255", "8/255"]
ATTACKS = ["fgsm", "pgd", "square"]
SEEDS = [0, 1, 2]
cell = runpy.run_path(str(HERE.parent / "bottle" / "tables.py"))["cell"]  # mean +- std [mean interval], as there


def load(path: Path = LEADERBOARD) -> pd.DataFrame:
    rows = pd.DataFrame(read_rows(path))
    for column in rows.columns:
        if column.startswith(("clean_", "adv_")) or column in ("seed", "n_eval", "memory_bank_size"):
            rows[column] = numeric(rows, column)
    return rows[rows["seed"].isin(SEEDS) & (rows["calibrator"] == "platt")]


def worst_per_seed(rows: pd.DataFrame) -> pd.DataFrame:
    """Per seed, the row with the lowest adversarial AUROC (the per-seed worst case over the given attacks)."""
    return rows.loc[rows.groupby("seed")["adv_auroc"].idxmin()] if len(rows) else rows


def detector_table(rows: pd.DataFrame) -> list[str]:
    """Clean AUROC, the noise control and each attack's adversarial AUROC per detector and eps, over seeds."""
    views = [(attack, "score") for attack in ATTACKS] + [(attack, "linear") for attack in ATTACKS]
    header = ("| detector | eps | clean AUROC | noise | "
              + " | ".join(f"{attack} {'white-box' if s == 'score' else 'transfer'}" for attack, s in views)
              + " | worst white-box |")
    lines = [header, "|" + " --- |" * (5 + len(views))]
    for detector in DETECTORS:
        own = rows[rows["detector"] == detector]
        for eps in EPS:
            at = own[own["eps"] == eps]
            noise = at[at["attack"] == "noise"]
            values = [cell(noise, "clean_auroc"), cell(noise, "adv_auroc")]
            for attack, surrogate in views:
                values.append(cell(at[(at["attack"] == attack) & (at["surrogate"] == surrogate)], "adv_auroc"))
            white = at[at["attack"].isin(ATTACKS) & (at["surrogate"] == "score")]
            values.append(cell(worst_per_seed(white), "adv_auroc"))
            lines.append(f"| {detector} | {eps} | " + " | ".join(values) + " |")
    return lines


def section(rows: pd.DataFrame) -> str:
    commit = COMMIT.read_text().strip() if COMMIT.exists() else "unknown"
    n_eval = int(rows["n_eval"].iloc[0])
    seeds = sorted(int(s) for s in rows["seed"].unique())
    text = [
        f"Real MVTec AD bottle images, `efficientnet_lite0` at 224 px (PatchCore on its stages `layer2,layer3`), "
        f"1-shot, seeds {', '.join(map(str, seeds))}, {n_eval} eval images, Platt; every number comes from rows of "
        f"`results/detectors/leaderboard.csv`, made at commit {commit} by `results/detectors/run.sh` with 1 torch "
        "thread and turned into this table by `results/detectors/tables.py`. Each entry is the mean ± standard "
        "deviation over seeds, with the mean 95 % bootstrap interval over eval images in brackets. *White-box*: "
        "through the detector's own differentiable score (`score` surrogate); *transfer*: through the `linear` "
        "surrogate head. Square uses 20 queries per image. *Worst white-box*: per seed, the lowest adversarial "
        "AUROC over fgsm, pgd and square, then averaged.",
        "",
        *detector_table(rows),
    ]
    return "\n".join(text)


if __name__ == "__main__":
    print(section(load()))
