"""The convergence section of the README, and one plot per sweep, from the leaderboard ``results/convergence/run.sh``
fills: the mean adversarial AUROC over seeds at every budget of each sweep, per detector and defense, and the
budget where each curve plateaus.

    .venv/bin/python results/convergence/tables.py [--leaderboard PATH] [--plots DIR]

A curve plateaus at the smallest budget from which every larger budget it was run at lies within ``TOLERANCE``
of its last value (a stronger attack is lower, so the curve falls towards it); where its last step still moves
it by more, the plateau is *not reached* (a larger budget is needed), and with fewer than two budgets it is n/a.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from robustad.results.frame import numeric, text  # noqa: E402
from robustad.results.leaderboard import read_rows  # noqa: E402

HERE = Path(__file__).resolve().parent
LEADERBOARD = HERE / "leaderboard.csv"
COMMIT = HERE / "commit.txt"
TOLERANCE = 0.01  # AUROC: below the seed-to-seed spread of every row measured so far
DEFAULT_EOT = 16  # the engine's EOT draws against a randomized defense (robustad.engine.defended.EOT_DEFAULT)


@dataclass(frozen=True)
class Sweep:
    """One budget swept with the others at their defaults: the rows it reads and the column holding the budget."""

    name: str
    attack: str
    budget: str
    fixed: tuple[tuple[str, float], ...]
    randomized_only: bool = False


SWEEPS = (
    Sweep("PGD steps", "pgd", "steps", (("restarts", 1),)),
    Sweep("Auto-PGD steps", "apgd", "steps", (("restarts", 1),)),
    Sweep("PGD-10 restarts", "pgd", "restarts", (("steps", 10),)),
    Sweep("PGD-10 EOT draws", "pgd", "eot_samples", (("steps", 10), ("restarts", 1)), randomized_only=True),
    Sweep("Square queries", "square", "queries", ()),
)


def load(path: Path = LEADERBOARD) -> pd.DataFrame:
    rows = pd.DataFrame(read_rows(path))
    for column in ("adv_auroc", "steps", "restarts", "queries", "eot_samples", "seed", "n_eval", "resolution"):
        rows[column] = numeric(rows, column)
    rows["defense"] = text(rows, "defense").replace("", "none")
    return rows


def curves(rows: pd.DataFrame, sweep: Sweep) -> pd.DataFrame:
    """Mean adversarial AUROC over seeds per (detector, defense, budget) of one sweep, with the seeds counted."""
    randomized = text(rows, "defense_randomized") == "True"
    part = rows[(text(rows, "attack") == sweep.attack) & (rows["norm"] == "linf")]
    for column, value in sweep.fixed:
        part = part[part[column] == value]
    part_randomized = randomized[part.index]
    if sweep.randomized_only:
        part = part[part_randomized]
    elif sweep.budget != "eot_samples":  # other sweeps: randomized defenses at the default EOT only
        part = part[~part_randomized | (part["eot_samples"] == DEFAULT_EOT)]
    if part.empty:
        return pd.DataFrame(columns=["detector", "defense", sweep.budget, "adv_auroc", "seeds"])
    grouped = part.groupby(["detector", "defense", sweep.budget])
    return grouped.agg(adv_auroc=("adv_auroc", "mean"), seeds=("seed", "nunique")).reset_index()


def plateau(curve: pd.DataFrame, budget: str) -> str:
    """The smallest budget from which every larger one lies within ``TOLERANCE`` of the last, as text; ``not
    reached`` where the last step still moves the curve more, ``n/a`` with fewer than two budgets."""
    curve = curve.sort_values(budget)
    if len(curve) < 2:
        return "n/a"
    last = curve["adv_auroc"].iloc[-1]
    within = (curve["adv_auroc"] - last).abs() <= TOLERANCE
    start = len(curve) - 1
    while start > 0 and within.iloc[start - 1]:
        start -= 1
    return "not reached" if start == len(curve) - 1 else f"{curve[budget].iloc[start]:g}"


def table(rows: pd.DataFrame, sweep: Sweep) -> list[str]:
    """A markdown table of one sweep: a line per detector and defense, a column per budget, and the plateau."""
    found = curves(rows, sweep)
    if found.empty:
        return []
    budgets = sorted(found[sweep.budget].unique())
    lines = [f"**{sweep.name}** (mean adversarial AUROC over seeds, eps 8/255)", "",
             "| detector | defense | seeds | " + " | ".join(f"{b:g}" for b in budgets) + " | plateau |",
             "|" + " --- |" * (len(budgets) + 4)]
    for (detector, defense), curve in found.groupby(["detector", "defense"], sort=False):
        values = dict(zip(curve[sweep.budget], curve["adv_auroc"]))
        cells = [f"{values[b]:.3f}" if b in values else "" for b in budgets]
        lines.append(f"| {detector} | {defense} | {int(curve['seeds'].max())} | " + " | ".join(cells)
                     + f" | {plateau(curve, sweep.budget)} |")
    return lines + [""]


def setting(rows: pd.DataFrame) -> str:
    """What the rows were run on, as the paragraph above the tables says it."""
    def listed(column: str) -> str:
        return ", ".join(f"{value:g}" for value in sorted(set(rows[column].dropna())))
    found = list(dict.fromkeys(COMMIT.read_text().split())) if COMMIT.exists() else []
    commits = ("commit " if len(found) == 1 else "commits ") + (", ".join(found) or "unknown")
    return (f"Real MVTec AD bottle images, `efficientnet_lite0` at {listed('resolution')} px, 1-shot, seeds "
            f"{listed('seed')}, {listed('n_eval')} eval images (`--limit`, drawn by the split rule), white-box "
            f"(`score` surrogate), eps 8/255, Platt; every number is a row of `results/convergence/leaderboard.csv`, "
            f"made at {commits} by `results/convergence/run.sh` and turned into these tables by "
            "`results/convergence/tables.py`. Each sweep moves one budget with the others at their defaults; a "
            f"curve *plateaus* at the smallest budget from which every larger one lies within {TOLERANCE} AUROC of "
            "its last value.")


def section(rows: pd.DataFrame) -> str:
    parts = [line for sweep in SWEEPS for line in table(rows, sweep)]
    if not parts:
        return "no convergence rows yet\n"
    return "\n".join([setting(rows), "", *parts]).rstrip("\n")


def plot(rows: pd.DataFrame, sweep: Sweep, folder: Path) -> Path | None:
    found = curves(rows, sweep)
    if found.empty:
        return None
    figure, axes = plt.subplots(figsize=(6, 4))
    for (detector, defense), curve in found.groupby(["detector", "defense"], sort=False):
        curve = curve.sort_values(sweep.budget)
        axes.plot(curve[sweep.budget], curve["adv_auroc"], marker="o", label=f"{detector}, {defense}")
    axes.set_xscale("log")
    axes.set_xlabel(sweep.name)
    axes.set_ylabel("adversarial AUROC (mean over seeds)")
    axes.set_title(f"bottle, efficientnet_lite0, eps 8/255: {sweep.name}", fontsize="medium")
    axes.legend(fontsize="small")
    path = folder / (sweep.name.lower().replace(" ", "-").replace("_", "-") + ".png")
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaderboard", type=Path, default=LEADERBOARD)
    parser.add_argument("--plots", type=Path, default=HERE, help="folder for one PNG per sweep")
    args = parser.parse_args()
    rows = load(args.leaderboard)
    print(section(rows))
    for sweep in SWEEPS:
        path = plot(rows, sweep, args.plots)
        if path is not None:
            print(path)


if __name__ == "__main__":
    main()
