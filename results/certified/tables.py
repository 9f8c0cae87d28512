"""The README's certified-against-empirical table, generated from the committed leaderboard beside this script.

Run ``.venv/bin/python results/certified/tables.py`` to print the section; ``tests/test_readme_numbers.py`` checks
that README.md holds exactly this text. The leaderboard is filled by ``results/certified/run.sh``.
"""

from __future__ import annotations

import json
import runpy
from fractions import Fraction
from pathlib import Path

import pandas as pd

from robustad.certify import joint_alpha
from robustad.results.frame import numeric
from robustad.results.leaderboard import read_rows

HERE = Path(__file__).resolve().parent
LEADERBOARD = HERE / "leaderboard.csv"
COMMIT = HERE / "commit.txt"
SIGMAS = [0.25, 0.5]
RADII = ["1/4", "1/2", "1"]
SHARED = runpy.run_path(str(HERE.parent / "bottle" / "tables.py"))
cell, seeds_of = SHARED["cell"], SHARED["seeds_of"]  # mean +- std [mean interval]; "0-2", as there


def load(path: Path = LEADERBOARD) -> pd.DataFrame:
    rows = pd.DataFrame(read_rows(path))
    for column in rows.columns:
        if column.startswith(("clean_", "adv_", "cert_auroc", "cert_infinite")) or column in ("seed", "n_eval"):
            rows[column] = numeric(rows, column)
    smoothing = rows["options"].map(lambda options: json.loads(options).get("defense.smoothing", {}))
    return rows.assign(sigma=smoothing.map(lambda o: o.get("sigma")), draws=smoothing.map(lambda o: o.get("samples")))


def mean_gap(certified: pd.DataFrame, attacked: pd.DataFrame) -> str:
    """The attack's AUROC less the certificate, seed by seed, as mean (lowest); n/a unless both have every seed."""
    both = certified.set_index("seed")["cert_auroc"].to_frame("cert").join(
        attacked.set_index("seed")["adv_auroc"].to_frame("attack"), how="inner")
    if both.empty or len(both) != len(certified):
        return "n/a"
    gaps = both["attack"] - both["cert"]
    return f"{gaps.mean():+.3f} ({gaps.min():+.3f})"


def certified_table(rows: pd.DataFrame) -> list[str]:
    lines = ["| sigma | L2 radius | certified AUROC | bootstrap over eval images | vacuous bounds | PGD-L2 (EOT 4) | "
             "gap: PGD − certified (lowest seed) | L2 noise | smoothed clean, 4 draws | smoothed clean, 100 draws |",
             "|" + " --- |" * 10]
    smoothed = rows[rows["defense"] == "smoothing"]
    for sigma in SIGMAS:
        own = smoothed[smoothed["sigma"] == sigma]
        few = own[own["draws"] != 100]
        many = own[own["draws"] == 100]
        for radius in RADII:
            certified = many[many["cert_radius"] == radius]
            pgd = few[(few["attack"] == "pgd") & (few["eps"] == radius)]
            noise = few[(few["attack"] == "noise") & (few["eps"] == radius)]
            vacuous = f"{certified['cert_infinite'].mean():.2f}" if len(certified) else "n/a"
            certificate, bootstrap = cell(certified, "cert_auroc").partition(" [")[::2]
            lines.append(f"| {sigma:g} | {float(Fraction(radius)):g} | {certificate} | "
                         f"{'[' + bootstrap if bootstrap else 'n/a'} | {vacuous} | "
                         f"{cell(pgd, 'adv_auroc')} | {mean_gap(certified, pgd)} | {cell(noise, 'adv_auroc')} | "
                         f"{cell(pgd, 'clean_auroc')} | {cell(certified, 'clean_auroc')} |")
    return lines


def joint_confidence(rows: pd.DataFrame) -> float:
    """The probability that every eval image's bound of a certified row holds at once: 1 - n_eval x cert_alpha
    (``certify.joint_alpha``; the same for every certified row here)."""
    certified = rows[rows["cert_radius"] != ""]
    levels = {1 - joint_alpha(float(alpha), int(n)) for alpha, n in zip(certified["cert_alpha"], certified["n_eval"])}
    if len(levels) != 1:
        raise ValueError(f"certified rows with different joint levels: {sorted(levels)}")
    return levels.pop()


def section(rows: pd.DataFrame) -> str:
    commit = "; ".join(COMMIT.read_text().split("\n")).strip("; ") if COMMIT.exists() else "unknown"
    undefended = rows[(rows["defense"] == "none") & (rows["eps"] == RADII[0])]
    text = [
        f"Real MVTec AD bottle images, `efficientnet_lite0` at 224 px, 1-shot, seeds {seeds_of(rows)}, "
        f"{int(rows['n_eval'].iloc[0])} eval images, median smoothing (`--defense smoothing`); every number comes "
        "from rows of `results/certified/leaderboard.csv`, made at commits "
        f"{commit} by `results/certified/run.sh` with 1 torch thread and turned into this table by "
        "`results/certified/tables.py`. Mean ± standard deviation over seeds, "
        "the 95 % interval of that mean in brackets "
        "(a two-level bootstrap over seeds and eval images, docs/protocol.md section 6; "
        "at 0 or 1 the Wilson score interval). *Certified AUROC*: every normal image at the upper and every "
        "anomalous one at the "
        "lower percentile bound of its smoothed score over all L2 perturbations of that radius, from 100 Gaussian "
        "draws per image with one-sided Clopper-Pearson confidence (`cert_alpha` 0.001 per bound and image, so all "
        f"{int(rows['n_eval'].iloc[0])} bounds a certificate needs hold at once with probability at least "
        f"{joint_confidence(rows):.3f} by the union bound); it is mean ± standard deviation over seeds, and the "
        "*bootstrap* column beside it is the spread over which eval images are drawn (each image's bounds held "
        "fixed), not part of the guarantee; "
        "*vacuous bounds*: the share of eval images whose bound is infinite (100 draws cannot reach the quantile "
        "Phi(r/sigma) at that confidence), which sets the certificate to 0 once every image has one. *PGD-L2*: "
        "white-box (`score` surrogate) PGD-10 in the L2 ball through the smoothed score with 4 draws and EOT 4 per "
        "step, scored with fresh draws; *L2 noise*: a random direction of the same L2 norm. The attacked detector "
        "takes the median of 4 draws, the certified one of 100: the gap column compares estimates of the same "
        "smoothed detector, and the clean columns show what the fewer draws cost. The undefended detector's clean "
        f"AUROC: {cell(undefended, 'clean_auroc')}.",
        "",
        *certified_table(rows),
    ]
    return "\n".join(text)


if __name__ == "__main__":
    print(section(load()))
