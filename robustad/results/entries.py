"""Entries and their ranking: what the site's table lists and orders (docs/protocol.md section 7).

An *entry* is a model under test: the cell's config fields of the split and model stages (shots, backbone, weights,
resolution, detector, precision, ... and any such field added later, a defense included) with the options of the
model's components. The dataset, category, threat model, eps and calibrator are what the table filters by; the
perturbation (attack, surrogate) is what the ranking takes the worst of. Natural corruptions are a threat model of
their own (``corruptions``, eps the severity), ranked by the mean over corruptions rather than the worst.
"""

from __future__ import annotations

import hashlib

import pandas as pd

from robustad.kit.threat import CORRUPTION
from robustad.records import MODEL, SPLIT, fields_with
from robustad.results.aggregate import STATISTICS, aggregate
from robustad.results.corruptions import SEVERITY_GROUP, mean_over_corruptions
from robustad.results.frame import MODEL_OPTION_KINDS, is_attack, key, numeric, text
from robustad.results.threats import row_threats

ENTRY = tuple(name for name in fields_with("config", stages=(SPLIT, MODEL)) if name != "dataset")
FILTERS = ("dataset", "category", "threat", "eps", "calibrator")
RANK_METRICS = ["clean_auroc", "adv_auroc", "noise_adv_auroc", "clean_ece", "adv_ece", "evasion_rate"]
ANY_THREAT = "any"
"""The threat model of the worst case over white-box, gray-box and transfer attacks alike."""
REFERENCE_ATTACK = "standard"
"""The attack whose numbers a line shows where its entry was attacked with it (an AutoAttack-grade per-image worst
case, the clean image included): the lowest of many attacks' AUROCs would pick the luckiest of their noisy
estimates. Lines without it show the worst over the attacks that ran."""
CORRUPTIONS_THREAT = "corruptions"
"""The threat model of the mean over natural corruptions (``--norm corruption``) at one severity."""


def with_entries(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows with ``entry`` (a short id, stable for the same settings) and ``threat`` (``white-box``,
    ``gray-box`` or ``transfer`` from the recorded ``white_box`` fact and attack settings, ``threats.threat``;
    ``, 8-bit`` when rounded; empty for clean-only rows and the noise control)."""
    ids = key(rows, ENTRY, MODEL_OPTION_KINDS).map(lambda k: "e" + hashlib.sha256(k.encode()).hexdigest()[:10])
    white = row_threats(rows)
    return rows.assign(entry=ids, threat=(white + threat_suffix(rows)).where(white != "", ""))


def threat_suffix(rows: pd.DataFrame) -> pd.Series:
    """``, 8-bit`` for rows rounded to 8 bits and ``, L2`` for the L2 ball: the threat models beside the default
    (L-inf, float images), which the table never ranks together with it."""
    rounded = text(rows, "round_8bit").map(lambda v: ", 8-bit" if v == "True" else "")
    return rounded + text(rows, "norm").map(lambda v: ", L2" if v == "l2" else "")


def entry_settings(rows: pd.DataFrame) -> dict[str, str]:
    """The settings of one entry's rows: its fields and the options of its model's components."""
    first = rows.iloc[0]
    settings = {name: str(first[name]) for name in ENTRY if name in rows and str(first[name]) != ""}
    options = key(rows.iloc[:1], (), MODEL_OPTION_KINDS).iloc[0].strip("\x1f")
    if options not in ("", "{}"):
        settings["options"] = options
    return settings


def entry_name(settings: dict[str, str]) -> str:
    """A short human name: detector, backbone, resolution, shots, precision and weights when not the default."""
    parts = [settings.get("detector", ""), settings.get("backbone", "")]
    parts += [f"{settings['resolution']} px" if "resolution" in settings else "",
              f"{settings['shots']}-shot" if "shots" in settings else "", settings.get("precision", "")]
    if settings.get("weights"):
        parts.append(f"weights {settings['weights'][:19]}")
    parts += [f"{k}={v}" for k, v in settings.items() if k not in {"detector", "backbone", "resolution", "shots",
                                                                   "precision", "weights", "options",
                                                                   "calib_fraction", "protocol"}]
    return " · ".join(p for p in parts if p)


def scopes(rows: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(dataset, category, rows) for every category, and ``mean of N`` over a dataset's N > 1 categories."""
    found = []
    for dataset, part in rows.groupby(text(rows, "dataset"), sort=False):
        categories = list(dict.fromkeys(text(part, "category")))
        found += [(dataset, category, part[text(part, "category") == category]) for category in categories]
        if len(categories) > 1:
            found.append((dataset, f"mean of {len(categories)}", part))
    return found


def ranking(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per entry, dataset, category (or mean), threat model, eps and calibrator: the clean AUROC, the
    worst adversarial AUROC (``REFERENCE_ATTACK``'s where it ran, else the worst over its attacks; with the
    attack), the noise control at that eps, clean ECE, and the worst adversarial ECE and evasion rate over the
    same attacks, each with its mean 95 % interval; ``rank`` orders the entries within each (dataset, category,
    threat, eps, calibrator) by the worst AUROC, best first."""
    rows = with_entries(rows)
    lines = []
    for dataset, category, part in scopes(rows):
        for entry, own in part.groupby("entry", sort=False):
            corrupted = text(own, "norm") == CORRUPTION
            lines += _worst_lines(own[~corrupted], entry, dataset, category)
            lines += _corruption_lines(own[corrupted], entry, dataset, category)
    table = pd.DataFrame(lines)
    if table.empty:
        return table
    table["rank"] = table.groupby(list(FILTERS))["adv_auroc_mean"].rank(method="min", ascending=False)
    return table


def _worst_lines(rows: pd.DataFrame, entry: str, dataset: str, category: str) -> list[dict]:
    attacked = rows[is_attack(rows)]
    if attacked.empty:
        return []
    pairs = text(attacked, "surrogate") + "\x1f" + text(attacked, "attack")
    white = attacked.groupby(pairs)["threat"].first().str.split(",").str[0]
    summary = aggregate(rows, RANK_METRICS)
    summary = summary[is_attack(summary)]
    suffix = threat_suffix(summary)
    summary = summary.assign(threat=(text(summary, "surrogate") + "\x1f" + text(summary, "attack")).map(white)
                             .fillna("") + suffix)
    lines = []
    groups = [(t, summary[summary["threat"] == t]) for t in dict.fromkeys(summary["threat"])]
    groups += [(ANY_THREAT + s, summary[suffix == s]) for s in dict.fromkeys(suffix)]
    for threat, group in groups:
        for (eps, calibrator), same in group.groupby(["eps", "calibrator"], sort=False):
            reference = same[text(same, "attack") == REFERENCE_ATTACK]
            lines.append({"entry": entry, "dataset": dataset, "category": category, "threat": threat, "eps": eps,
                          "calibrator": calibrator, **_worst(same if reference.empty else reference)})
    return lines


def _corruption_lines(rows: pd.DataFrame, entry: str, dataset: str, category: str) -> list[dict]:
    """Per severity and calibrator, the mean over corruptions of the adversarial AUROC beside the clean AUROC
    (``corruptions.mean_over_corruptions``); the other metrics are left undefined."""
    summary = mean_over_corruptions(rows)
    lines = []
    for _, same in summary.groupby([*SEVERITY_GROUP, "options"], sort=False, dropna=False):
        clean = same[same["severity"] == 0].iloc[0]
        for _, line in same[same["severity"] > 0].iterrows():
            values = {f"{metric}_{statistic}": float("nan") for metric in RANK_METRICS for statistic in STATISTICS}
            for metric, source in (("clean_auroc", clean), ("adv_auroc", line)):
                values.update({f"{metric}_mean": source["auroc_mean"], f"{metric}_ci_low": source["auroc_ci_low"],
                               f"{metric}_ci_high": source["auroc_ci_high"]})
            lines.append({"entry": entry, "dataset": dataset, "category": category, "threat": CORRUPTIONS_THREAT,
                          "eps": str(line["severity"]), "calibrator": line["calibrator"],
                          "attack": f"mean of {line['corruptions']} corruptions", **values})
    return lines


def _worst(lines: pd.DataFrame) -> dict:
    """The worst of some attacks' aggregated lines: lowest adversarial AUROC, highest adversarial ECE and evasion."""
    def pick(metric: str, lowest: bool) -> pd.Series:
        values = lines[f"{metric}_mean"]
        return lines.loc[values.idxmin() if lowest else values.idxmax()] if values.notna().any() else lines.iloc[0]

    auroc = pick("adv_auroc", lowest=True)
    out = {"attack": f"{auroc['attack']} via {auroc['surrogate']}"}
    for metric, line in (("clean_auroc", auroc), ("adv_auroc", auroc), ("noise_adv_auroc", auroc),
                         ("clean_ece", auroc), ("adv_ece", pick("adv_ece", lowest=False)),
                         ("evasion_rate", pick("evasion_rate", lowest=False))):
        for statistic in ("mean", "std", "ci_low", "ci_high"):
            out[f"{metric}_{statistic}"] = line[f"{metric}_{statistic}"]
    return out


def with_breaking_eps(lines: pd.DataFrame) -> pd.DataFrame:
    """The ranking lines with ``breaking_eps``: per entry, dataset, category, threat model and calibrator, the eps
    at which the worst adversarial AUROC over the lines' eps falls below 0.5 (``radius.breaking_eps``, eps 0 being
    the clean AUROC; inf when no eps of the grid gets there). Only as fine as the grid of eps that was run."""
    from fractions import Fraction

    from robustad.radius import breaking_eps

    values = pd.Series(float("nan"), index=lines.index)
    for _, group in lines.groupby(["entry", "dataset", "category", "threat", "calibrator"], sort=False):
        eps = group["eps"].map(lambda e: float(Fraction(e)) if e else float("nan")).to_numpy(dtype=float)
        auroc, clean = group["adv_auroc_mean"].to_numpy(dtype=float), group["clean_auroc_mean"].to_numpy(dtype=float)
        defined = ~(pd.isna(eps) | pd.isna(auroc))
        if defined.any() and not pd.isna(clean).all():
            values[group.index] = breaking_eps(eps[defined], auroc[defined], float(pd.Series(clean).mean()))
    return lines.assign(breaking_eps=values)


def with_radius(lines: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """The ranking lines with ``radius_median`` and ``radius_rank`` where the entry's rows searched the radius
    (``bench --radius``): per surrogate of the line's threat model, the rows' median radius averaged over seeds and
    categories (inf where a row's median lies beyond its search bound: more than half its images never moved),
    and the smallest over those surrogates (the worst case). ``radius_rank`` orders the entries within each (dataset,
    category, threat, eps, calibrator) by it, largest first: it ranks entries that all reach AUROC 0 at the eps."""
    rows = with_entries(rows) if "entry" not in rows else rows
    searched = rows[numeric(rows, "radius_eps_max").notna()]
    values = pd.Series(float("nan"), index=lines.index)
    for index, line in lines.iterrows() if len(searched) else ():
        values[index] = _worst_radius(_line_rows(searched, line))
    lines = lines.assign(radius_median=values)
    ranked = lines["radius_median"].notna()
    ranks = lines[ranked].groupby(list(FILTERS))["radius_median"].rank(method="min", ascending=False)
    return lines.assign(radius_rank=ranks.reindex(lines.index))


def _line_rows(rows: pd.DataFrame, line: pd.Series) -> pd.DataFrame:
    """The rows a ranking line summarises: its entry, dataset, category (every one for a mean), eps, calibrator and
    threat model (``any``: every threat of its suffix)."""
    same = (rows["entry"] == line["entry"]) & (text(rows, "dataset") == line["dataset"]) \
        & (text(rows, "eps") == line["eps"]) & (text(rows, "calibrator") == line["calibrator"])
    if not str(line["category"]).startswith("mean of"):
        same &= text(rows, "category") == line["category"]
    threat = str(line["threat"])
    if threat.startswith(ANY_THREAT):
        same &= threat_suffix(rows) == threat[len(ANY_THREAT):]
    else:
        same &= rows["threat"] == threat
    return rows[same]


def _worst_radius(rows: pd.DataFrame) -> float:
    """The smallest over surrogates of the mean over categories of the mean over seeds of the median radius (one
    row per search: the attacks of one surrogate and eps share it)."""
    if rows.empty:
        return float("nan")
    frame = pd.DataFrame({"surrogate": text(rows, "surrogate"), "category": text(rows, "category"),
                          "seed": text(rows, "seed"), "median": numeric(rows, "radius_median")})
    frame["median"] = frame["median"].fillna(float("inf"))  # searched, yet no finite median: censored
    searches = frame.groupby(["surrogate", "category", "seed"], sort=False)["median"].first()
    per_category = searches.groupby(level=["surrogate", "category"], sort=False).mean()
    return float(per_category.groupby(level="surrogate", sort=False).mean().min())
