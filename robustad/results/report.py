"""``robustad report``: PNG figures and an HTML page from a leaderboard (and its per-image scores)."""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from robustad import metrics  # noqa: E402
from robustad.results.aggregate import aggregate  # noqa: E402


def write_report(rows: pd.DataFrame, scores_dir: Path | None, out: Path) -> Path:
    """Write the figures and ``index.html`` into ``out``; returns the HTML path."""
    out.mkdir(parents=True, exist_ok=True)
    figures = [_metric_vs_eps(rows, metric, out) for metric in ("auroc", "ap")]
    if scores_dir is not None and scores_dir.is_dir():
        scores = _load_scores(rows, scores_dir)
        if not scores.empty:
            figures += [_reliability(scores, out), _entropy_histograms(scores, out)]
    figures = [f for f in figures if f is not None]
    page = out / "index.html"
    table = aggregate(rows).to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="")
    images = "\n".join(f'<figure><img src="{f.name}" alt="{html.escape(f.stem)}"><figcaption>'
                       f"{html.escape(f.stem)}</figcaption></figure>" for f in figures)
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>robustad report</title>"
        "<style>body{font-family:sans-serif;margin:2em}img{max-width:48em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>"
        f"<h1>robustad report</h1><p>{len(rows)} leaderboard rows.</p>{images}<h2>Aggregated rows</h2>{table}"
        "</body></html>"
    )
    return page


def _metric_vs_eps(rows: pd.DataFrame, metric: str, out: Path) -> Path | None:
    """Adversarial ``metric`` against eps, one line per attack and surrogate, the clean level dashed."""
    attacked = rows[rows["attack"] != "none"].copy()
    if attacked.empty:
        return None
    for column in (f"adv_{metric}", f"clean_{metric}", "eps_value"):
        attacked[column] = pd.to_numeric(attacked[column], errors="coerce")
    fig, ax = plt.subplots(figsize=(6, 4))
    for (attack, surrogate), part in attacked.groupby(["attack", "surrogate"]):
        curve = part.groupby("eps_value")[f"adv_{metric}"].mean()
        ax.plot(curve.index * 255, curve.values, marker="o", label=f"{attack} / {surrogate}")
    ax.axhline(attacked[f"clean_{metric}"].mean(), linestyle="--", color="gray", label="clean")
    ax.set_xlabel("eps (x 1/255)")
    ax.set_ylabel(f"eval image {metric.upper()}")
    ax.legend(fontsize="small")
    return _save(fig, out / f"{metric}_vs_eps.png")


def _load_scores(rows: pd.DataFrame, scores_dir: Path) -> pd.DataFrame:
    parts = []
    for _, row in rows.iterrows():
        path = scores_dir / f"{row['cell_hash']}.csv"
        if path.exists():
            frame = pd.read_csv(path)
            frame["calibrator"] = row["calibrator"]
            frame["attack"] = f"{row['attack']} {row['eps']} {row['surrogate']}".strip()
            parts.append(frame[frame["split"] == "eval"])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _reliability(scores: pd.DataFrame, out: Path) -> Path:
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
    return _save(fig, out / "reliability.png")


def _entropy_histograms(scores: pd.DataFrame, out: Path) -> Path:
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
    return _save(fig, out / "entropy.png")


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
