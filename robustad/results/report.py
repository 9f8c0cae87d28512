"""``robustad report``: PNG figures and an HTML page from a leaderboard (and its per-image scores).

Every input is checked (``check_paths``, ``load_scores``) before anything is drawn."""

from __future__ import annotations

import contextlib
import html
from collections.abc import Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from robustad import metrics  # noqa: E402
from robustad.components import parse_spec  # noqa: E402
from robustad.errors import RobustadError, one_line  # noqa: E402
from robustad.outputs import check_folder  # noqa: E402
from robustad.records import NO_ATTACK, NOISE_CONTROL  # noqa: E402
from robustad.results.aggregate import aggregate, mean_if_complete  # noqa: E402
from robustad.results.frame import attack_names, numeric, text  # noqa: E402

SCORE_COLUMNS = ("path", "split", "label", "clean_score", "clean_prob", "adv_score", "adv_prob")


def check_paths(out: Path, scores_dir: Path | None) -> None:
    """``--out`` must be a folder (new or existing), never an existing file; ``--scores`` an existing folder."""
    _check_out(out)
    if scores_dir is not None:
        _check_scores_dir(scores_dir)


def _check_out(out: Path) -> None:
    check_folder(out, "--out", "the figures and index.html")


@contextlib.contextmanager
def _writing(out: Path) -> Iterator[None]:
    """What the checks could not foresee (a full disk, a folder made read-only meanwhile) is one line too."""
    try:
        yield
    except OSError as exc:
        raise RobustadError(f"--out {out}: cannot write the report ({one_line(exc)})") from None


def _check_scores_dir(scores_dir: Path) -> None:
    if not scores_dir.is_dir():
        raise RobustadError(f"--scores {scores_dir} is not a folder; expected the --save-scores folder of a bench run")


def load_scores(rows: pd.DataFrame, scores_dir: Path) -> tuple[pd.DataFrame, int]:
    """The eval images' per-image scores of every row that has a score file, and how many rows have none."""
    _check_scores_dir(scores_dir)
    parts, missing = [], 0
    for _, row in rows.iterrows():
        path = scores_dir / f"{row['cell_hash']}.csv"
        if not path.is_file():
            missing += 1
            continue
        frame = _read_score_file(path)
        frame["calibrator"] = row["calibrator"]
        frame["attack"] = f"{row['attack']} {row['eps']} {row['surrogate']}".strip()
        parts.append(frame[frame["split"] == "eval"])
    return (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()), missing


def _read_score_file(path: Path) -> pd.DataFrame:
    """One cell's score file, checked to be what ``bench --save-scores`` writes."""
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise RobustadError(f"score file {path} is empty") from None
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise RobustadError(f"score file {path} is not a CSV text file ({' '.join(str(exc).split())})") from None
    absent = [c for c in SCORE_COLUMNS if c not in frame.columns]
    if absent:
        raise RobustadError(f"score file {path} is not a robustad score file: it lacks {', '.join(absent)} "
                            f"(expected {', '.join(SCORE_COLUMNS)})")
    if frame.empty:
        raise RobustadError(f"score file {path} is empty (a header and no images)")
    try:
        for column in ("label", "clean_prob", "adv_prob"):
            frame[column] = numeric(frame, column)
    except RobustadError as exc:
        raise RobustadError(f"score file {path}: {exc}") from None
    return frame


def write_report(rows: pd.DataFrame, scores: pd.DataFrame | None, out: Path) -> Path:
    """Write the figures and ``index.html`` into ``out``; returns the HTML path. ``scores``: from ``load_scores``."""
    _check_out(out)
    table = aggregate(rows).to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="")
    eps_figures = {metric: draw_metric_vs_eps(rows, metric) for metric in ("auroc", "ap")}
    with _writing(out):
        out.mkdir(parents=True, exist_ok=True)
        figures = [_save(figure, out / f"{metric}_vs_eps.png") for metric, figure in eps_figures.items()
                   if figure is not None]
        if scores is not None and not scores.empty:
            figures += [_reliability(scores, out), _entropy_histograms(scores, out)]
        page = out / "index.html"
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


def eps_curves(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per detector, attack, surrogate and eps: the mean ``adv_<metric>`` and the mean of its 95 % interval bounds
    over the rows (defined only when every row has it, as in ``aggregate``). Clean-only rows are left out."""
    attacked = rows[attack_names(rows) != NO_ATTACK]
    frame = pd.DataFrame({
        "detector": text(attacked, "detector"), "attack": text(attacked, "attack"),
        "surrogate": text(attacked, "surrogate"),
        "eps_value": numeric(attacked, "eps_value"), "mean": numeric(attacked, f"adv_{metric}"),
        "ci_low": numeric(attacked, f"adv_{metric}_ci_low"), "ci_high": numeric(attacked, f"adv_{metric}_ci_high"),
    }).dropna(subset=["eps_value"])
    if frame.empty:
        return frame
    return frame.groupby(["detector", "attack", "surrogate", "eps_value"]).agg(mean_if_complete).reset_index()


def draw_metric_vs_eps(rows: pd.DataFrame, metric: str) -> plt.Figure | None:
    """Adversarial ``metric`` against eps with its 95 % interval as error bars, one line per attack and surrogate,
    the noise control as a dotted black line, the clean level dashed; None without attacked rows. With several
    detectors, each has its own lines and clean level, labelled with its name."""
    curves = eps_curves(rows, metric)
    if curves.empty:
        return None
    several = curves["detector"].nunique() > 1
    fig, ax = plt.subplots(figsize=(6, 4))
    for (detector, attack, surrogate), curve in curves.groupby(["detector", "attack", "surrogate"]):
        x = curve["eps_value"] * 255
        prefix = f"{detector}: " if several else ""
        if parse_spec(attack)[0] == NOISE_CONTROL:
            style = {"color": "black", "linestyle": ":", "marker": "s", "label": f"{prefix}{attack} control"}
        else:
            style = {"marker": "o", "label": f"{prefix}{attack} / {surrogate}"}
        (line,) = ax.plot(x, curve["mean"], **style)
        bounded = curve.dropna(subset=["ci_low", "ci_high"])
        if len(bounded):
            ax.errorbar(bounded["eps_value"] * 255, (bounded["ci_low"] + bounded["ci_high"]) / 2,
                        yerr=(bounded["ci_high"] - bounded["ci_low"]) / 2, fmt="none", ecolor=line.get_color(),
                        capsize=3, label="_nolegend_")
    attacked = rows[attack_names(rows) != NO_ATTACK]
    for detector in curves["detector"].unique():
        clean = mean_if_complete(numeric(attacked[text(attacked, "detector") == detector], f"clean_{metric}"))
        if not np.isnan(clean):
            ax.axhline(clean, linestyle="--", color="gray", label=f"clean ({detector})" if several else "clean")
    ax.set_xlabel("eps (x 1/255)")
    ax.set_ylabel(f"eval image {metric.upper()} (bars: 95 % interval)")
    ax.legend(fontsize="small")
    return fig


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
