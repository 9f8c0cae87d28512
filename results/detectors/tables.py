"""The README's detector comparison, generated from the committed leaderboard beside this script.

Run ``.venv/bin/python results/detectors/tables.py`` to print the section; ``tests/test_readme_numbers.py`` checks
that README.md holds exactly this text. The leaderboard is filled by ``results/detectors/run.sh``.
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pandas as pd

from robustad.results import threats
from robustad.results.audit import audit
from robustad.results.compare import compare
from robustad.results.frame import load_rows, numeric
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
              + " | ".join(f"{attack} {threat(attack, s)}" for attack, s in views)
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


def threat(attack: str, surrogate: str) -> str:
    """The core's rule (``robustad.results.threats``) for this grid: ``score`` is its white-box surrogate and FGSM
    its one single-step attack."""
    return threats.threat(surrogate == "score", attack == "fgsm")


PAIRS = [("patchcore", "anomalydino"), ("subspacead", "anomalydino"), ("subspacead", "patchcore")]


def paired_table(rows: pd.DataFrame) -> list[str]:
    """``robustad compare --axis detector`` on these rows: per attack, threat and eps, the paired difference of
    adversarial AUROC (mean over seeds) of each pair with its interval, * where significant after Holm."""
    table = compare(rows, "detector", metric="adv_auroc", resamples=2000)
    scopes = list(dict.fromkeys(table["scope"]))
    lines = ["| attack | eps | " + " | ".join(f"{a} − {b}" for a, b in PAIRS) + " |", "|" + " --- |" * (2 + len(PAIRS))]
    for scope in scopes:
        attack, surrogate, eps = scope.split(" ")
        cells = []
        for a, b in PAIRS:
            line = table[(table["scope"] == scope) & (((table["a"] == a) & (table["b"] == b))
                                                      | ((table["a"] == b) & (table["b"] == a)))].iloc[0]
            sign = 1 if line["a"] == a else -1  # a - b as the column names it
            low, high = sorted((sign * line["low"], sign * line["high"]))
            cells.append(f"{sign * line['difference']:+.3f} [{low:+.2f}, {high:+.2f}]"
                         + (" *" if line["significant"] else ""))
        label = "noise" if attack == "noise" else f"{attack} {threat(attack, surrogate)}"
        lines.append(f"| {label} | {eps} | " + " | ".join(cells) + " |")
    return lines


def audit_lines(path: Path = LEADERBOARD) -> list[str]:
    """``robustad audit`` on the whole leaderboard, its failures grouped by check, detector and comparison with
    the seeds they fail on."""
    everything = load_rows(path, [])
    failures = audit(everything)
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for failure in failures:
        detector = re.search(r"detector=(\S+)", failure.where).group(1)
        seed = re.search(r"seed=(\d+)", failure.where).group(1)
        what = failure.detail.split(":")[0]
        grouped.setdefault((failure.check, detector, what), []).append(seed)
    lines = [f"`robustad audit` on `results/detectors/leaderboard.csv` ({len(everything)} rows): "
             f"{len(failures)} failed checks" + (":" if failures else ".")]
    for (check, detector, what), seeds in grouped.items():
        lines.append(f"- {check}, {detector}: {what} (seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)})")
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
        "deviation over seeds, with the 95 % interval of that mean in brackets "
        "(a two-level bootstrap over seeds and eval images, docs/protocol.md section 6; "
        "at 0 or 1 the Wilson score interval). *White-box*: "
        "through the detector's own differentiable score (`score` surrogate); *transfer*: FGSM through the `linear` "
        "surrogate head (one step, nothing chosen by the detector); *gray-box*: PGD and Square through the `linear` "
        "head, where the detector's real score picks the iterate each image keeps. "
        "Square uses 20 queries per image. *Worst white-box*: per seed, the lowest adversarial "
        "AUROC over fgsm, pgd and square, then averaged.",
        "",
        *detector_table(rows),
        "",
        "**Paired differences** (`robustad compare results/detectors/leaderboard.csv --axis detector`, Platt rows): "
        "adversarial AUROC of the first detector less the second's on the same seeds (splits and reference images), "
        "mean over seeds, with its paired two-level 95 % interval. The leaderboard holds no per-image scores, so the "
        "image level comes from each row's interval with the two detectors' image errors taken as independent (wider "
        "than a paired draw of the same images). * marks a difference significant at 5 % after Holm's correction "
        "over the 14 attack and eps cells of that pair; with 3 seeds no bootstrap p-value can fall below 2/2001, so "
        "a pair needs a clear, same-signed gap on every seed.",
        "",
        *paired_table(rows),
        "",
        *audit_lines(),
    ]
    return "\n".join(text)


if __name__ == "__main__":
    print(section(load()))
