"""The mean over natural corruptions per severity (docs/protocol.md section 4, ``--norm corruption``): the
corruption benchmark's summary number (ImageNet-C's mean over corruptions, here of the image AUROC).

Severity 0 is the clean image: its line is the rows' clean AUROC, so that a curve starts where the detector does.
"""

from __future__ import annotations

import pandas as pd

from robustad.kit.threat import CORRUPTION
from robustad.records import fields_with
from robustad.results.aggregate import CONFIG, aggregate
from robustad.results.frame import attack_names, options_key, text

SEVERITY_GROUP = [name for name in CONFIG if name not in ("options", "eps", *fields_with("perturbation"))]
"""What a mean over corruptions keeps apart: every configuration column but the corruption and its severity."""
OTHER_KINDS = ("dataset", "backbone", "detector", "defense", "surrogate", "calibrator", "flag")
"""The component kinds whose options stay apart (the attack's option is the corruption averaged over)."""


def corruption_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of the corruption threat model (``norm`` ``corruption``, an attack that is not ``none``)."""
    return rows[(text(rows, "norm") == CORRUPTION) & ~attack_names(rows).isin(["none", ""])]


def mean_over_corruptions(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per configuration and severity: ``auroc_mean``, the mean over corruptions of their AUROC (each
    first averaged over seeds, then categories, as ``aggregate``), with the mean of their 95 % interval bounds
    (``auroc_ci_low``/``_high``), how many ``corruptions`` it averages and their names; severity 0 is the clean
    AUROC of the same rows. Rows of other threat models are ignored; an empty frame when there are none."""
    columns = [*SEVERITY_GROUP, "options", "severity", "corruptions", "names", "auroc_mean", "auroc_ci_low",
               "auroc_ci_high", "categories", "seeds"]
    source = corruption_rows(rows)
    if source.empty:
        return pd.DataFrame(columns=columns)
    lines = aggregate(source, ["clean_auroc", "adv_auroc"])
    lines = lines.assign(options=options_key(lines, *OTHER_KINDS), corruption=_corruption_names(source, lines))
    out = []
    for _, same in lines.groupby([*SEVERITY_GROUP, "options"], sort=False, dropna=False):
        first = same.iloc[0]
        base = {name: first[name] for name in [*SEVERITY_GROUP, "options"]}
        names = sorted(set(same["corruption"]))
        out.append({**base, "severity": 0, "corruptions": len(names), "names": ",".join(names),
                    **_mean(same, "clean_auroc")})
        for severity, level in same.groupby(same["eps"].astype(int), sort=True):
            if severity == 0:
                continue
            names = sorted(set(level["corruption"]))
            out.append({**base, "severity": int(severity), "corruptions": len(names), "names": ",".join(names),
                        **_mean(level, "adv_auroc")})
    return pd.DataFrame(out, columns=columns)


def _corruption_names(source: pd.DataFrame, lines: pd.DataFrame) -> pd.Series:
    """Each aggregated line's corruption, read from its options (``attack.<name>`` holds the one option)."""
    from json import loads

    def name(options: str) -> str:
        values = [v for k, v in loads(options or "{}").items() if k.startswith("attack.")]
        return ",".join(str(v) for value in values for v in value.values()) if values else ""

    return text(lines, "options").map(name)


def _mean(lines: pd.DataFrame, metric: str) -> dict:
    """The mean over the lines (one per corruption) of a metric's mean and interval bounds, and the replicates."""
    return {"auroc_mean": float(lines[f"{metric}_mean"].mean()),
            "auroc_ci_low": float(lines[f"{metric}_ci_low"].mean()),
            "auroc_ci_high": float(lines[f"{metric}_ci_high"].mean()),
            "categories": int(lines["categories"].max()), "seeds": int(lines["seeds"].max())}
