"""The site's and the report's figures: robustness curves (a metric against eps, intervals as bands, the noise
control dashed; under L2 the certified AUROC against the radius beside them), reliability diagrams and entropy
histograms, clean against attacked."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from robustad import metrics  # noqa: E402
from robustad.components import parse_spec  # noqa: E402
from robustad.records import NO_ATTACK, NOISE_CONTROL  # noqa: E402
from robustad.results.aggregate import UNBOUNDED, mean_if_complete  # noqa: E402
from robustad.results.frame import attack_names, fractions, numeric, text  # noqa: E402
from robustad.twolevel import seed_mean_bounds  # noqa: E402

CURVE = ["attack", "surrogate", "variant", "eps_value"]


def eps_curves(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per attack, surrogate, ``attack_variant`` and eps: the mean of ``adv_<metric>`` (or of a flag column such as
    ``flag_auroc``, ``evasion_rate``) and the 95 % interval of the mean over seeds, as the tables give it
    (``twolevel.seed_mean_bounds``: seeds and each row's images resampled), per category and then averaged over
    categories (as ``aggregate``); defined only when every row has it. Rows of one seed and category (its
    calibrators) are averaged first: they are one draw of the seed. Clean-only rows are left out."""
    column = metric if metric in metrics.ATTACK_METRICS else f"adv_{metric}"
    attacked = rows[attack_names(rows) != NO_ATTACK]
    frame = pd.DataFrame({
        "attack": text(attacked, "attack"), "surrogate": text(attacked, "surrogate"),
        "variant": attack_variant(attacked), "eps_value": numeric(attacked, "eps_value"),
        "category": text(attacked, "dataset") + "/" + text(attacked, "category"), "seed": text(attacked, "seed"),
        "n_eval": numeric(attacked, "n_eval"), "mean": numeric(attacked, column),
        "ci_low": numeric(attacked, f"{column}_ci_low"), "ci_high": numeric(attacked, f"{column}_ci_high"),
    }).dropna(subset=["eps_value"])
    if frame.empty:
        return frame
    seeds = frame.groupby([*CURVE, "category", "seed"], sort=False).agg(mean_if_complete).reset_index()
    bounded = not column.endswith(UNBOUNDED)
    per_category = seeds.groupby([*CURVE, "category"], sort=False).apply(
        lambda group: _seed_mean(group, bounded), include_groups=False).reset_index()
    return per_category.groupby(CURVE)[["mean", "ci_low", "ci_high"]].agg(mean_if_complete).reset_index()


def _seed_mean(seeds: pd.DataFrame, bounded: bool) -> pd.Series:
    """One category's mean over seeds and its two-level interval (Wilson at 0 or 1 with seeds x eval images)."""
    n_eval = seeds["n_eval"]
    n_eff = float(n_eval.sum()) if n_eval.notna().all() else None
    low, high = seed_mean_bounds(seeds["mean"], seeds["ci_low"], seeds["ci_high"], n_eff=n_eff, bounded=bounded)
    return pd.Series({"mean": mean_if_complete(seeds["mean"]), "ci_low": low, "ci_high": high})


def unmoved_curves(rows: pd.DataFrame, scores: pd.DataFrame, points: int = 65) -> pd.DataFrame:
    """Per surrogate and search bound of the rows that searched the radius (``bench --radius``), the share of eval
    images not yet moved across the decision threshold at each eps from 0 to the bound: the share whose radius
    in the score files is above eps (RobustBench's robust accuracy against eps). One search per category, seed,
    surrogate and bound (the attacks and calibrators of one search share it); images pooled over them."""
    searched = rows[numeric(rows, "radius_eps_max").notna()]
    if searched.empty or scores is None or scores.empty or "radius" not in scores:
        return pd.DataFrame(columns=["surrogate", "eps_max", "eps", "share"])
    keys = pd.DataFrame({column: text(searched, column) for column in ("dataset", "category", "seed", "surrogate",
                                                                        "norm")})
    keys["eps_max"] = numeric(searched, "radius_eps_max")
    first = keys.assign(cell_hash=searched["cell_hash"]).drop_duplicates(subset=list(keys.columns))
    found = []
    for (surrogate, eps_max), group in first.groupby(["surrogate", "eps_max"], sort=False):
        radii = pd.to_numeric(scores.loc[scores["cell_hash"].isin(set(group["cell_hash"])), "radius"]).dropna()
        if radii.empty:
            continue
        grid = np.linspace(0.0, eps_max, points)
        share = (radii.to_numpy()[None, :] > grid[:, None]).mean(axis=1)
        found += [{"surrogate": surrogate, "eps_max": eps_max, "eps": e, "share": s} for e, s in zip(grid, share)]
    return pd.DataFrame(found, columns=["surrogate", "eps_max", "eps", "share"])


def draw_unmoved(curves: pd.DataFrame, norm: str = "linf") -> plt.Figure | None:
    """The share of eval images not yet moved against eps (``unmoved_curves``), one line per surrogate and bound."""
    if curves.empty:
        return None
    scale = 255 if norm == "linf" else 1
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for (surrogate, eps_max), curve in curves.groupby(["surrogate", "eps_max"], sort=False):
        ax.step(curve["eps"] * scale, curve["share"], where="post", label=f"via {surrogate} (searched to "
                f"{eps_max * scale:.3g})")
    ax.set_xlabel("eps (x 1/255)" if norm == "linf" else "L2 eps ([0,1] pixels)")
    ax.set_ylabel("share of eval images not moved")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("images on the right side of the threshold against eps (radius search)", fontsize="medium")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return fig


def attack_variant(rows: pd.DataFrame) -> pd.Series:
    """How a gradient met the defense, where rows of one entry may differ in it: ``no BPDA`` (``--bpda off``), and
    through a randomized defense its draws per score and EOT draws per step (``4 draws, EOT 4``); empty otherwise
    and for the noise control, which takes no gradient."""
    bpda = text(rows, "bpda").map(lambda value: "no BPDA" if value == "off" else "")
    eot = "EOT " + text(rows, "eot_samples")
    draws = (_draws(rows) + " draws, " + eot).where(text(rows, "defense_randomized") == "True", "")
    variant = [", ".join(part for part in parts if part) for parts in zip(bpda, draws)]
    return pd.Series(variant, index=rows.index, dtype=object).where(attack_names(rows) != NOISE_CONTROL, "")


def _draws(rows: pd.DataFrame) -> pd.Series:
    """``defense_samples`` as an integer's text (a float column in pandas: ``4.0``)."""
    return text(rows, "defense_samples").str.replace(r"\.0$", "", regex=True)


def certified_curve(rows: pd.DataFrame) -> pd.DataFrame:
    """Per L2 radius: the mean ``cert_auroc`` and the mean of its 95 % interval bounds over the certified rows (as
    ``eps_curves``), with the draws and ``cert_alpha`` they were certified with."""
    frame = pd.DataFrame({
        "radius": fractions(rows, "cert_radius"), "mean": numeric(rows, "cert_auroc"),
        "ci_low": numeric(rows, "cert_auroc_ci_low"), "ci_high": numeric(rows, "cert_auroc_ci_high"),
        "draws": _draws(rows),
        "cert_alpha": text(rows, "cert_alpha"),
    }).dropna(subset=["radius", "mean"])
    if frame.empty:
        return frame
    return frame.groupby(["draws", "cert_alpha", "radius"]).agg(mean_if_complete).reset_index()


def draw_metric_vs_eps(rows: pd.DataFrame, metric: str, *, norm: str = "linf",
                       certified: pd.DataFrame | None = None) -> plt.Figure | None:
    """Adversarial ``metric`` against eps, one line per attack and surrogate with its 95 % interval as a band, the
    noise control dashed black, the clean level dotted grey, the legend outside the data; eps in 1/255 under
    L-inf, in L2 units under ``norm="l2"``, where the ``certified`` rows' certified AUROC joins them (green, its
    interval as a band) against the radius. None when there is nothing to draw. Bands: the two-level interval of
    the mean over seeds (``eps_curves``)."""
    curves = eps_curves(rows, metric)
    certificate = certified_curve(certified) if certified is not None and metric == "auroc" else pd.DataFrame()
    if curves.empty and certificate.empty:
        return None
    scale = 255 if norm == "linf" else 1
    fig, ax = plt.subplots(figsize=(7, 3.6))
    bands = []
    for (attack, surrogate, variant), curve in (curves.groupby(["attack", "surrogate", "variant"]) if len(curves)
                                                else ()):
        if parse_spec(attack)[0] == NOISE_CONTROL:
            style = {"color": "black", "linestyle": "--", "marker": "s", "label": f"{attack} control"}
        else:
            style = {"marker": "o", "label": f"{attack} / {surrogate}" + (f" ({variant})" if variant else "")}
        bands.append((curve["eps_value"] * scale, curve, ax.plot(curve["eps_value"] * scale, curve["mean"],
                                                                 **style)[0]))
    for (draws, alpha), curve in certificate.groupby(["draws", "cert_alpha"]) if len(certificate) else ():
        label = f"certified ({draws} draws, alpha {alpha})" if draws else f"certified (alpha {alpha})"
        bands.append((curve["radius"], curve, ax.plot(curve["radius"], curve["mean"], color="tab:green",
                                                      marker="^", label=label)[0]))
    for x, curve, line in bands:
        bounded = curve.dropna(subset=["ci_low", "ci_high"])
        if len(bounded):
            ax.fill_between(x[bounded.index], bounded["ci_low"], bounded["ci_high"],
                            color=line.get_color(), alpha=0.15, linewidth=0, label="_nolegend_")
    clean = mean_if_complete(numeric(rows[attack_names(rows) != NO_ATTACK], f"clean_{metric}"))
    if not np.isnan(clean):
        ax.axhline(clean, linestyle=":", color="gray", label="clean")
    what = "eps (x 1/255)" if norm == "linf" else "L2 eps or certified radius ([0,1] pixels)"
    ax.set_xlabel(what)
    ax.set_ylabel(f"eval image {metric.upper()}")
    ball = "" if norm == "linf" else "L2 "
    ax.set_title(f"adversarial {metric.upper()} against {ball}eps (bands: 95 % interval)", fontsize="medium")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return fig


def draw_reliability(scores: pd.DataFrame, out: Path) -> Path:
    """Reliability diagrams per calibrator: clean eval vs adversarial eval (all attacks pooled)."""
    calibrators = sorted(scores["calibrator"].unique())
    fig, axes = plt.subplots(1, len(calibrators), figsize=(3.2 * len(calibrators), 3.2), squeeze=False)
    for ax, name in zip(axes[0], calibrators):
        part = scores[scores["calibrator"] == name]
        adv = part.dropna(subset=["adv_prob"])
        for label, probs, labels in (("clean", part["clean_prob"], part["label"]),
                                     ("adversarial", adv["adv_prob"], adv["label"])):
            if len(probs):
                bins = [b for b in metrics.reliability_diagram(labels.to_numpy(), probs.to_numpy())
                        if b["count"]]
                ax.plot([b["mean_confidence"] for b in bins], [b["observed_frequency"] for b in bins],
                        marker="o", label=label)
        ax.plot([0, 1], [0, 1], linestyle=":", color="gray")
        ax.set_title(name)
        ax.set_xlabel("confidence p")
    axes[0][0].set_ylabel("observed frequency")
    axes[0][0].legend(fontsize="small")
    return save(fig, out / "reliability.png")


def draw_entropy(scores: pd.DataFrame, out: Path) -> Path:
    """Predictive entropy of clean and adversarial eval images, per calibrator."""
    calibrators = sorted(scores["calibrator"].unique())
    fig, axes = plt.subplots(1, len(calibrators), figsize=(3.2 * len(calibrators), 3.2), squeeze=False)
    edges = np.linspace(0, np.log(2), 16)
    for ax, name in zip(axes[0], calibrators):
        part = scores[scores["calibrator"] == name]
        ax.hist(metrics.binary_entropy(part["clean_prob"].to_numpy()), bins=edges, alpha=0.6, label="clean")
        adv = part["adv_prob"].dropna().to_numpy()
        if len(adv):
            ax.hist(metrics.binary_entropy(adv), bins=edges, alpha=0.6, label="adversarial")
        ax.set_title(name)
        ax.set_xlabel("H(p) [nats]")
    axes[0][0].legend(fontsize="small")
    return save(fig, out / "entropy.png")


def save(fig: plt.Figure, path: Path) -> Path:
    """A small PNG, cropped to what is drawn (the legend outside the axes included)."""
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def draw_corruptions(rows: pd.DataFrame, summary: pd.DataFrame) -> plt.Figure | None:
    """AUROC against corruption severity (0: clean): one thin line per corruption (``rows``, the mean over their
    rows), the mean over corruptions (``summary``, from ``corruptions.mean_over_corruptions``) bold with its
    mean 95 % interval as a band. None when there is nothing to draw."""
    if summary.empty:
        return None
    frame = pd.DataFrame({"corruption": text(rows, "corruption"), "severity": numeric(rows, "eps_value"),
                          "auroc": numeric(rows, "adv_auroc")}).dropna()
    clean = mean_if_complete(numeric(rows, "clean_auroc"))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for index, (name, curve) in enumerate(frame.groupby("corruption")):  # tab20: 13 corruptions, 13 colours
        curve = curve.groupby("severity")["auroc"].mean()
        ax.plot([0, *curve.index], [clean, *curve.values], linewidth=0.9, alpha=0.8, label=name,
                color=plt.get_cmap("tab20")(index % 20))
    mean = summary.groupby("severity")[["auroc_mean", "auroc_ci_low", "auroc_ci_high"]].mean()
    line = ax.plot(mean.index, mean["auroc_mean"], color="black", linewidth=2.5, marker="o",
                   label="mean over corruptions")[0]
    ax.fill_between(mean.index, mean["auroc_ci_low"], mean["auroc_ci_high"], color=line.get_color(), alpha=0.12,
                    linewidth=0, label="_nolegend_")
    ax.set_xlabel("corruption severity (0: clean)")
    ax.set_ylabel("eval image AUROC")
    ax.set_title("AUROC under natural corruptions (band: mean 95 % interval)", fontsize="medium")
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return fig
