"""The README's detector comparison, generated from the committed leaderboard beside this script.

Run ``.venv/bin/python results/detectors/tables.py`` to print the section; ``tests/test_readme_numbers.py`` checks
that README.md holds exactly this text. The leaderboard is filled by ``results/detectors/run.sh``.
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import numpy as np
import pandas as pd

from robustad.radius import median_radius
from robustad.results import threats
from robustad.results.audit import audit
from robustad.results.compare import compare
from robustad.results.frame import load_rows, numeric, text
from robustad.results.leaderboard import read_rows
from robustad.results.scorefiles import read_score_file

HERE = Path(__file__).resolve().parent
LEADERBOARD = HERE / "leaderboard.csv"
COMMIT = HERE / "commit.txt"
SCORES = HERE / "scores"
DETECTORS = ["anomalydino", "patchcore", "subspacead"]
EPS = ["2/255", "8/255"]
ATTACKS = ["fgsm", "pgd", "square"]
SEEDS = [0, 1, 2]
cell = runpy.run_path(str(HERE.parent / "bottle" / "tables.py"))["cell"]  # mean +- std [mean interval], as there


def load(path: Path = LEADERBOARD) -> pd.DataFrame:
    rows = pd.DataFrame(read_rows(path))
    for column in rows.columns:
        if column.startswith(("clean_", "adv_", "radius_")) or column in ("seed", "n_eval", "memory_bank_size"):
            rows[column] = numeric(rows, column)
    return rows[rows["seed"].isin(SEEDS)]


def plain(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of the attack grid: without the ``--radius`` rows, which repeat seed 0's PGD at 8/255."""
    return rows[text(rows, "radius") != "True"]


def platt(rows: pd.DataFrame) -> pd.DataFrame:
    """The grid's Platt rows: every table but the calibration one reads them (calibrators do not change AUROC)."""
    plain_rows = plain(rows)
    return plain_rows[plain_rows["calibrator"] == "platt"]


def cnn_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The three detectors on efficientnet_lite0 (WinCLIP runs on its own CLIP)."""
    return rows[rows["detector"].isin(DETECTORS)]


CALIBRATORS = ["none", "platt", "isotonic", "temperature"]


def calibration_table(rows: pd.DataFrame) -> list[str]:
    """Per detector and calibrator, ECE on clean eval images and under white-box FGSM and PGD at 8/255."""
    attacked = cnn_rows(plain(rows))
    attacked = attacked[(attacked["surrogate"] == "score") & (attacked["eps"] == "8/255")]
    lines = ["| detector | calibrator | clean ECE | FGSM 8/255 ECE | PGD 8/255 ECE |", "|" + " --- |" * 5]
    for detector in DETECTORS:
        for calibrator in CALIBRATORS:
            own = attacked[(attacked["detector"] == detector) & (attacked["calibrator"] == calibrator)]
            fgsm, pgd = own[own["attack"] == "fgsm"], own[own["attack"] == "pgd"]
            values = [cell(fgsm, "clean_ece"), cell(fgsm, "adv_ece"), cell(pgd, "adv_ece")]
            lines.append(f"| {detector} | {calibrator} | " + " | ".join(values) + " |")
    return lines


def worst_per_seed(rows: pd.DataFrame) -> pd.DataFrame:
    """Per seed, the row with the lowest adversarial AUROC (the per-seed worst case over the given attacks)."""
    return rows.loc[rows.groupby("seed")["adv_auroc"].idxmin()] if len(rows) else rows


def auroc_cells(at: pd.DataFrame, views: list[tuple[str, str]]) -> list[str]:
    """The clean AUROC and the noise control's, then each (attack, surrogate) view's adversarial AUROC, of the
    rows of one table line."""
    noise = at[at["attack"] == "noise"]
    return [cell(noise, "clean_auroc"), cell(noise, "adv_auroc"),
            *(cell(at[(at["attack"] == attack) & (at["surrogate"] == surrogate)], "adv_auroc")
              for attack, surrogate in views)]


def detector_table(rows: pd.DataFrame) -> list[str]:
    """Clean AUROC, the noise control and each attack's adversarial AUROC per detector and eps, over seeds."""
    rows = cnn_rows(platt(rows))
    views = [(attack, "score") for attack in ATTACKS] + [("fgsm", "linear")]
    header = ("| detector | eps | clean AUROC | noise | "
              + " | ".join(f"{attack} {threat(attack, s)}" for attack, s in views)
              + " | worst white-box |")
    lines = [header, "|" + " --- |" * (5 + len(views))]
    for detector in DETECTORS:
        own = rows[rows["detector"] == detector]
        for eps in EPS:
            at = own[own["eps"] == eps]
            values = auroc_cells(at, views)
            white = at[at["attack"].isin(ATTACKS) & (at["surrogate"] == "score")]
            values.append(cell(worst_per_seed(white), "adv_auroc"))
            lines.append(f"| {detector} | {eps} | " + " | ".join(values) + " |")
    return lines


def winclip_table(rows: pd.DataFrame) -> list[str]:
    """WinCLIP zero-shot and 1-shot on its own (randomly initialised) CLIP: the noise control and white-box attacks."""
    rows = platt(rows)
    rows = rows[rows["detector"] == "winclip"]
    if rows.empty:
        return []
    lines = ["| shots | eps | clean AUROC | noise | fgsm white-box | pgd white-box |", "|" + " --- |" * 6]
    for shots in sorted(rows["shots"].unique(), key=int):
        for eps in [eps for eps in EPS if eps in set(rows["eps"])]:
            values = auroc_cells(rows[(rows["shots"] == shots) & (rows["eps"] == eps)],
                                 [("fgsm", "score"), ("pgd", "score")])
            lines.append(f"| {shots} | {eps} | " + " | ".join(values) + " |")
    return lines


def radius_table(rows: pd.DataFrame) -> list[str]:
    """Per detector, from the per-image radii of its ``--radius`` row (white-box PGD-10 searched up to 8/255): the
    median over all eval images (``>`` the bound where more than half never moved), the median over the normal
    images with a 95 % percentile bootstrap interval over them, and the share of anomalous images moved at all."""
    found = cnn_rows(rows[rows["calibrator"] == "platt"])
    found = found[text(found, "radius") == "True"]
    if found.empty:
        return []
    lines = ["| detector | tolerance (x 1/255) | median radius, all (x 1/255) | median radius, normal (x 1/255) | "
             "anomalous moved by 8/255 |", "|" + " --- |" * 5]
    for detector in DETECTORS:
        own = found[found["detector"] == detector]
        if own.empty:
            continue
        row = own.iloc[0]
        images = read_score_file(SCORES / f"{row['cell_hash']}.csv")
        images = images[images["split"] == "eval"]
        radii = pd.to_numeric(images["radius"]).to_numpy() * 255
        labels = images["label"].to_numpy(dtype=int)
        normal, low, high = median_radius(radii[labels == 0], resamples=2000)
        overall = np.median(radii)
        bound = float(row["radius_eps_max"]) * 255
        lines.append(f"| {detector} | {float(row['radius_tol']) * 255:.3f} | "
                     + (f"{overall:.2f}" if np.isfinite(overall) else f"> {bound:g}")
                     + f" | {normal:.2f} [{low:.2f}, {high:.2f}] | "
                     f"{int(np.isfinite(radii[labels == 1]).sum())} of {int((labels == 1).sum())} |")
    return lines


def threat(attack: str, surrogate: str) -> str:
    """The core's rule (``robustad.results.threats``) for this grid: ``score`` is its white-box surrogate and FGSM
    its one single-step attack."""
    return threats.threat(surrogate == "score", attack == "fgsm")


PAIRS = [("patchcore", "anomalydino"), ("subspacead", "anomalydino"), ("subspacead", "patchcore")]


def paired_table(rows: pd.DataFrame) -> list[str]:
    """``robustad compare --axis detector`` on these rows: per attack, threat and eps, the paired difference of
    adversarial AUROC (mean over seeds) of each pair with its interval, * where significant after Holm."""
    table = compare(cnn_rows(platt(rows)), "detector", metric="adv_auroc", scores=SCORES, resamples=2000)
    scopes = list(dict.fromkeys(table["scope"]))
    lines = ["| attack | eps | " + " | ".join(f"{a} − {b}" for a, b in PAIRS) + " |", "|" + " --- |" * (2 + len(PAIRS))]
    for scope in scopes:
        attack, surrogate, eps = scope.split(" ")
        cells = []
        for a, b in PAIRS:
            found = table[(table["scope"] == scope) & (((table["a"] == a) & (table["b"] == b))
                                                       | ((table["a"] == b) & (table["b"] == a)))]
            if found.empty:
                cells.append("n/a")
                continue
            line = found.iloc[0]
            sign = 1 if line["a"] == a else -1  # a - b as the column names it
            low, high = sorted((sign * line["low"], sign * line["high"]))
            low, high = low + 0.0, high + 0.0  # no "-0.00" where every resample agrees on 0
            cells.append(f"{sign * line['difference'] + 0.0:+.3f} [{low:+.2f}, {high:+.2f}]"
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


def radius_section(rows: pd.DataFrame) -> list[str]:
    table = radius_table(rows)
    if not table:
        return []
    return ["**Robustness radius** (`--radius`, seed 0): per eval image, the smallest eps at which white-box PGD-10 "
            "moves it across the decision threshold (the calib F1-optimal one; normal images up, anomalous ones "
            "down), found by bisection up to 8/255 within the stated tolerance (docs/protocol.md section 6); an "
            "image never moved counts as beyond the bound.", "", *table, ""]


def commits() -> str:
    """The commits that made the rows (run.sh adds a line per run), as the text names them."""
    found = list(dict.fromkeys(COMMIT.read_text().split())) if COMMIT.exists() else []
    return ("commit " if len(found) == 1 else "commits ") + (", ".join(found) or "unknown")


def section(rows: pd.DataFrame) -> str:
    cnn = cnn_rows(platt(rows))
    n_eval = int(cnn["n_eval"].iloc[0])
    seeds = sorted(int(s) for s in cnn["seed"].unique())
    winclip = winclip_table(rows)
    text = [
        f"Real MVTec AD bottle images, `efficientnet_lite0` at 224 px (PatchCore on its stages `layer2,layer3`), "
        f"1-shot, seeds {', '.join(map(str, seeds))}, {n_eval} eval images, Platt, protocol 2 (the clean image kept "
        "where an attack does not help, the margin loss on a logit scaled by the calib scores' spread); every "
        f"number comes from rows of `results/detectors/leaderboard.csv`, made at {commits()} by "
        "`results/detectors/run.sh` with 1 torch thread and turned into this table by `results/detectors/tables.py`. "
        "Each entry is the mean ± standard deviation over seeds, with the 95 % interval of that mean in brackets "
        "(a two-level bootstrap over seeds and eval images, docs/protocol.md section 6; "
        "at 0 or 1 the Wilson score interval). *White-box*: through the detector's own differentiable score "
        "(`score` surrogate); *transfer*: FGSM through the `linear` surrogate head (one step, nothing chosen by the "
        "detector). PGD has 10 steps, Square 20 queries per image (a reduced budget: see the convergence study "
        "below). *Worst white-box*: per seed, the lowest adversarial AUROC over fgsm, pgd and square, then averaged.",
        "",
        *detector_table(rows),
        "",
        "**Paired differences** (`robustad compare results/detectors/leaderboard.csv --axis detector --scores "
        "results/detectors/scores`, Platt rows): adversarial AUROC of the first detector less the second's on the "
        "same seeds (splits and reference images) and the same eval images, mean over seeds, with its paired "
        "two-level 95 % interval (seeds, then the same eval images resampled for both, stratified by label). * marks "
        "a difference significant at 5 % after Holm's correction over the attack and eps cells of that pair; with 3 "
        "seeds no bootstrap p-value can fall below 2/2001, so a pair needs a clear, same-signed gap on every seed.",
        "",
        *paired_table(rows),
        "",
        *audit_lines(),
        "",
        *radius_section(rows),
        "**Calibration** (the same rows, every calibrator: they share the attacked images, so only the "
        "probabilities differ; ECE of the positive class, 15 bins):",
        "",
        *calibration_table(rows),
    ]
    if winclip:
        text += [
            "",
            "**WinCLIP** (`winclip`, anomalib's window mode, on its own CLIP `clip_vitb16plus_240` at 240 px) "
            "zero-shot (`--shots 0`, prompts from the class name) and 1-shot, seed 0, eps 8/255, "
            f"{int(rows[rows['detector'] == 'winclip']['n_eval'].iloc[0])} eval images drawn by the split rule "
            "(`--limit`), "
            "Platt. **Its CLIP weights are seeded random ones** (`--weights random`: no CLIP weights can be "
            "downloaded on this machine), so these rows test the pipeline, not WinCLIP: its clean AUROC is that of "
            "an untrained network.",
            "",
            *winclip,
        ]
    return "\n".join(text)


if __name__ == "__main__":
    print(section(load()))
