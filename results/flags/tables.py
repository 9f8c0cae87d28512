"""The README's flag and conformal tables, generated from the committed leaderboard beside this script.

Run ``.venv/bin/python results/flags/tables.py`` to print the section; ``tests/test_readme_numbers.py`` checks that
README.md holds exactly this text. The leaderboard is filled by ``results/flags/run.sh``.
"""

from __future__ import annotations

import math
import runpy
from pathlib import Path

import pandas as pd

from robustad.results.frame import numeric
from robustad.results.leaderboard import read_rows

HERE = Path(__file__).resolve().parent
LEADERBOARD = HERE / "leaderboard.csv"
COMMIT = HERE / "commit.txt"
FLAGS = ["entropy", "squeeze", "consistency"]
EPS = ["2/255", "8/255"]
ALPHAS = ["conformal:0.1", "conformal:0.2"]
NORMAL_EVAL = 14  # bottle's 20 normal test images less the 6 of every 1-shot split's calib (as results/bottle)
NORMAL_CALIB = 6  # the normal calib images a conformal p-value is ranked against, in every split
SHARED = runpy.run_path(str(HERE.parent / "bottle" / "tables.py"))
cell, seeds_of = SHARED["cell"], SHARED["seeds_of"]  # mean +- std [mean interval]; "0-2", as there


def load(path: Path = LEADERBOARD) -> pd.DataFrame:
    rows = pd.DataFrame(read_rows(path))
    for column in rows.columns:
        if column.startswith(("clean_", "adv_", "flag_tpr", "flag_auroc", "evasion_")) or column in ("seed", "n_eval",
                                                                                    "conformal_alpha"):
            rows[column] = numeric(rows, column)
    return rows[rows["attack"] == "pgd"]


def flag_table(rows: pd.DataFrame) -> list[str]:
    """Per flag and eps: flag TPR and evasion rate under PGD and under PGD aware of that flag (Platt rows)."""
    platt = rows[rows["calibrator"] == "platt"]
    lines = ["| flag | eps | PGD: flag TPR | PGD: evasion | aware PGD: flag TPR | aware PGD: evasion | "
             "aware PGD: adv AUROC | seeds (aware) |", "|" + " --- |" * 8]
    for flag in FLAGS:
        own = platt[platt["flag"] == flag]
        for eps in EPS:
            plain = own[(own["eps"] == eps) & (own["flag_aware"] == "")]
            aware = own[(own["eps"] == eps) & (own["flag_aware"] == flag)]
            values = [cell(plain, "flag_tpr"), cell(plain, "evasion_rate"), cell(aware, "flag_tpr"),
                      cell(aware, "evasion_rate"), cell(aware, "adv_auroc"),
                      seeds_of(aware) if len(aware) else "none"]
            lines.append(f"| {flag} | {eps} | " + " | ".join(values) + " |")
    return lines


def fpr_check(alpha: float, n_calib: int, m_eval: int, seeds: int) -> tuple[float, float]:
    """(exact marginal bound, the largest mean clean FPR over ``seeds`` splits that is within two standard
    deviations of it). Given a calib set of ``n_calib`` normal images, the false-positive rate of p <= alpha is
    F ~ Beta(l, n + 1 - l), l = floor(alpha (n + 1)), and its mean is the bound l / (n + 1); a split's observed FPR
    on ``m_eval`` normal eval images is Binomial(m, F) / m, of variance Var F + E[F (1 - F)] / m. The images of
    different splits are counted as independent splits (they share the category's 20 normal images)."""
    rank = math.floor(alpha * (n_calib + 1) + 1e-9)
    a, b = rank, n_calib + 1 - rank
    mean = a / (a + b)
    variance = a * b / ((a + b) ** 2 * (a + b + 1)) if rank else 0.0
    per_split = variance + (mean - variance - mean * mean) / m_eval
    return mean, mean + 2 * math.sqrt(per_split / seeds)


def conformal_table(rows: pd.DataFrame) -> list[str]:
    """Per alpha: clean FPR (mean over seeds) against the exact marginal bound and the check with the variance
    conditional on each split's calib set, clean TPR at alpha, and the FPR under PGD at each eps."""
    plain = rows[(rows["flag"] == "entropy") & (rows["flag_aware"] == "")]
    lines = ["| alpha | degenerate splits | clean FPR | exact bound (marginal) | check: ≤ bound + 2 sd | clean TPR | "
             + " | ".join(f"PGD {eps} FPR" for eps in EPS) + " |", "|" + " --- |" * (6 + len(EPS))]
    for spec in ALPHAS:
        own = plain[plain["calibrator"] == spec]
        if own.empty:
            continue
        alpha = float(spec.partition(":")[2])
        first = own[own["eps"] == EPS[0]]
        bound, limit = fpr_check(alpha, NORMAL_CALIB, NORMAL_EVAL, len(first))
        fpr = first["clean_fpr_at_alpha"].mean()
        values = [f"{int((first['calib_degenerate'] == 'True').sum())} of {len(first)}", f"{fpr:.3f}",
                  f"{bound:.3f}", f"{limit:.3f}: {'holds' if fpr <= limit else 'fails'}",
                  cell(first, "clean_tpr_at_alpha")]
        values += [cell(own[own["eps"] == eps], "adv_fpr_at_alpha") for eps in EPS]
        lines.append(f"| {alpha:g} | " + " | ".join(values) + " |")
    return lines


def section(rows: pd.DataFrame) -> str:
    commit = "; ".join(COMMIT.read_text().split("\n")).strip("; ") if COMMIT.exists() else "unknown"  # a line a run
    text = [
        f"Real MVTec AD bottle images, `efficientnet_lite0` at 224 px, 1-shot, seeds {seeds_of(rows)}, "
        f"{int(rows['n_eval'].iloc[0])} eval images, white-box PGD-10 (`score` surrogate); every number comes from "
        f"rows of `results/flags/leaderboard.csv`, made at commit {commit} by `results/flags/run.sh` with 1 torch "
        "thread and turned into these tables by `results/flags/tables.py`. Mean ± standard deviation over seeds, "
        "the 95 % interval of that mean in brackets "
        "(a two-level bootstrap over seeds and eval images, docs/protocol.md section 6; "
        "at 0 or 1 the Wilson score interval). Each flag's threshold gives at most 5 % false flags on the "
        "clean calib images; *evasion*: attacked eval images misclassified (Platt p on the wrong side of 0.5) and "
        "not flagged, over all eval images. *Aware PGD*: PGD with `flag_aware=<that flag>`.",
        "",
        *flag_table(rows),
        "",
        "**Conformal decisions** (p <= alpha against the clean calib normal scores; PGD rows as above): with "
        f"{NORMAL_CALIB} normal calib images the exact guarantee is floor(alpha x {NORMAL_CALIB + 1}) / "
        f"{NORMAL_CALIB + 1}, and it is marginal: it holds on average over calib sets, not for each one. Given its "
        "calib set a split's false-positive rate is Beta distributed around that bound, so the clean FPR, averaged "
        f"over seeds ({NORMAL_EVAL} normal eval images each), is checked against the bound plus two standard "
        "deviations of that mean, the calib set's variance included; *degenerate*: splits whose normal calib images "
        "are too few for any p-value to reach alpha.",
        "",
        *conformal_table(rows),
    ]
    return "\n".join(text)


if __name__ == "__main__":
    print(section(load()))
