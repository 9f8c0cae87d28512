"""The README's defense table, generated from the committed leaderboard beside this script.

Run ``.venv/bin/python results/defenses/tables.py`` to print the section; ``tests/test_readme_numbers.py`` checks
that README.md holds exactly this text. The leaderboard is filled by ``results/defenses/run.sh``.
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
DEFENSES = ["none", "jpeg", "bitdepth", "median", "blur", "gaussian", "smoothing"]
EPS = ["2/255", "8/255"]
GRADIENT = ["fgsm", "pgd"]
SHARED = runpy.run_path(str(HERE.parent / "bottle" / "tables.py"))
cell, seeds_of = SHARED["cell"], SHARED["seeds_of"]  # mean +- std [mean interval]; "0-2", as there


def load(path: Path = LEADERBOARD) -> pd.DataFrame:
    rows = pd.DataFrame(read_rows(path))
    for column in rows.columns:
        if column.startswith(("clean_", "adv_")) or column in ("eot_samples", "seed"):
            rows[column] = numeric(rows, column)
    return rows


def seed_note(rows: pd.DataFrame, seeds: str) -> str:
    """`` (seed 0)`` where the rows come from fewer seeds than the defense's (a run not finished), else nothing."""
    own = "" if rows.empty else seeds_of(rows)
    if own in ("", seeds):
        return ""
    return f" (seed{'s' if rows['seed'].nunique() > 1 else ''} {own})"


def worst(rows: pd.DataFrame, seeds: str) -> str:
    """The attack with the lowest adversarial AUROC averaged over the seeds it ran on: that AUROC and its name."""
    if rows.empty:
        return "n/a"
    attack = rows.groupby("attack")["adv_auroc"].mean().idxmin()
    chosen = rows[rows["attack"] == attack]
    return f"{cell(chosen, 'adv_auroc')} {attack}{seed_note(chosen, seeds)}"


def adaptive(rows: pd.DataFrame) -> pd.Series:
    """Rows attacked the way the engine does by default: BPDA identity through non-differentiable defenses, more
    than one EOT draw through randomized ones."""
    return (rows["bpda"] != "off") & ((rows["defense_randomized"] != "True") | (rows["eot_samples"] > 1))


def defense_table(rows: pd.DataFrame) -> list[str]:
    header = ("| defense | seeds | clean AUROC | noise 8/255 | " + " | ".join(f"adaptive {e}" for e in EPS) + " | "
              + " | ".join(f"naive {e}" for e in EPS) + " |")
    lines = [header, "|" + " --- |" * (4 + 2 * len(EPS))]
    for defense in DEFENSES:
        own = rows[rows["defense"] == defense]
        if own.empty:
            continue
        seeds = seeds_of(own)
        noise = own[(own["attack"] == "noise") & (own["eps"] == "8/255")]
        clean = own.drop_duplicates("seed")
        cells = [seeds, cell(clean, "clean_auroc"), cell(noise, "adv_auroc") + seed_note(noise, seeds)]
        attacked = own[~own["attack"].isin(["noise", "none"])]
        for eps in EPS:
            cells.append(worst(attacked[adaptive(attacked) & (attacked["eps"] == eps)], seeds))
        for eps in EPS:
            naive = attacked[~adaptive(attacked) & (attacked["eps"] == eps) & attacked["attack"].isin(GRADIENT)]
            cells.append(worst(naive, seeds) if defense not in ("none", "median", "blur") else "same")
        lines.append(f"| {defense} | " + " | ".join(cells) + " |")
    return lines


def section(rows: pd.DataFrame) -> str:
    commit = "; ".join(filter(None, COMMIT.read_text().splitlines())) if COMMIT.exists() else "unknown"  # a line a run
    n_eval = int(numeric(rows, "n_eval").iloc[0])
    text = [
        f"Real MVTec AD bottle images, `efficientnet_lite0` at 224 px, 1-shot, white-box (`score` "
        f"surrogate), {n_eval} eval images; every number is a row of `results/defenses/leaderboard.csv`, made "
        f"by `results/defenses/run.sh` with 1 torch thread at commits {commit}, and turned into this table by "
        "`results/defenses/tables.py`. One row: its value and 95 % bootstrap interval over eval images; several seeds "
        "(the *seeds* column): mean ± standard deviation over them, the 95 % interval of that mean in brackets "
        "(a two-level bootstrap over seeds and eval images, docs/protocol.md section 6; "
        "at 0 or 1 the Wilson score interval), the seeds "
        "named where a cell has fewer. *Adaptive*: the lowest mean adversarial AUROC over the attacks run through "
        "the defense the engine's way (BPDA identity "
        "through `jpeg` and `bitdepth`, exact gradients through `median` and `blur`, EOT 4 through `gaussian` "
        "and `smoothing`, both with 4 samples per score), the attack that reached it named; every defense faces "
        "fgsm, pgd, square (20 queries) and their per-image worst case (`worstcase` over noise, fgsm, pgd and "
        "square); apgd (20 steps) runs where PGD leaves something (jpeg, bitdepth, gaussian, smoothing). "
        "*Naive*: the same gradient attacks without BPDA (`--bpda off`) or with one draw per step "
        "(`--eot 1`). *n/a*: not run yet (`results/defenses/run.sh` fills it).",
        "",
        *defense_table(rows),
    ]
    missing = [d for d in DEFENSES if d not in set(rows["defense"])]
    if missing:
        text += ["", f"Not run yet: {', '.join(f'`{d}`' for d in missing)}."]
    return "\n".join(text)


if __name__ == "__main__":
    print(section(load()))
