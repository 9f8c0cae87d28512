"""``robustad site`` (and ``robustad report``, the same pages for one run): a static site that opens from disk.

``index.html`` ranks the entries (``entries.ranking``) in a table that ``static/site.js`` sorts and filters in the
browser, with no network and no framework; ``entries/<id>.html`` is one card per entry: its settings, versions,
data digests, per-category numbers, robustness curves, reliability diagrams (with ``--scores``), published
reference numbers where they match, and the adversarial gallery (with ``--examples``).
"""

from __future__ import annotations

import math
from fractions import Fraction
from importlib.resources import files
from pathlib import Path

import jinja2
import pandas as pd

from robustad.contained import inside
from robustad.errors import RobustadError
from robustad.kit.threat import CORRUPTION
from robustad.outputs import check_folder
from robustad.records import NO_ATTACK
from robustad.results.aggregate import beside_published
from robustad.results.compare import next_in_rank
from robustad.results.corruptions import corruption_rows, mean_over_corruptions
from robustad.results.entries import (
    ANY_THREAT,
    ENTRY,
    FILTERS,
    entry_name,
    entry_settings,
    ranking,
    with_breaking_eps,
    with_entries,
    with_radius,
)
from robustad.results.examples import gallery
from robustad.results.figures import (
    draw_corruptions,
    draw_entropy,
    draw_metric_vs_eps,
    draw_reliability,
    draw_unmoved,
    save,
    unmoved_curves,
)
from robustad.results.frame import MODEL_OPTION_KINDS, SMOOTHING_DRAWS, attack_names, key, numeric, text
from robustad.results.schema import INTERVAL_COLUMNS
from robustad.version import __version__

VERSIONS = ("robustad_version", "torch_version", "timm_version", "faiss_version", "weights_id", "device",
            "torch_threads")
DATA = ("dataset", "category", "data_id", "data_sha", "n_ref", "n_calib", "n_eval", "seed")
METRIC_COLUMNS = ("clean_auroc_full", *INTERVAL_COLUMNS,
                  *(f"{c}_ci_{bound}" for c in INTERVAL_COLUMNS for bound in ("low", "high")))
COLUMNS = (("rank", "rank"), ("entry", "entry"), ("dataset", "dataset"), ("category", "category"),
           ("threat", "threat"), ("eps", "eps"), ("calibrator", "calibrator"), ("clean_auroc", "clean AUROC"),
           ("adv_auroc", "worst adv AUROC"), ("vs_next", "above next"), ("attack", "worst attack"),
           ("breaking_eps", "AUROC < 0.5 from eps"), ("radius_median", "median radius"),
           ("radius_rank", "radius rank"), ("noise_adv_auroc", "noise control"),
           ("clean_ece", "clean ECE"), ("adv_ece", "worst adv ECE"), ("evasion_rate", "worst evasion rate"))


def check_out(out: Path) -> None:
    """``--out`` must be a folder (new or existing) this process may write in: not a file, not below one, not in
    a read-only folder."""
    check_folder(out, "--out", "the site")


def check_examples(examples: Path | None) -> None:
    if examples is not None and not examples.is_dir():
        raise RobustadError(f"--examples {examples} is not a folder; expected the --save-examples folder of a "
                            "bench run")


def build_site(rows: pd.DataFrame, out: Path, *, scores: pd.DataFrame | None = None, examples: Path | None = None,
               published: pd.DataFrame | None = None, title: str = "robustad leaderboard",
               source: str = "a leaderboard") -> Path:
    """Write the site into ``out`` and return its ``index.html``. ``scores``: from ``scores.load_scores``."""
    check_out(out)
    check_examples(examples)
    for column in METRIC_COLUMNS:  # text where a number belongs is one line now, not a gap in some figure later
        numeric(rows, column)
    rows = with_entries(rows)
    lines = ranking(rows)
    names = {entry: entry_name(entry_settings(own)) for entry, own in rows.groupby("entry", sort=False)}
    env = _environment()
    out.mkdir(parents=True, exist_ok=True)
    _copy_static(out / "static")
    common = {"version": __version__, "source": source}
    if not lines.empty:
        lines = lines.assign(name=lines["entry"].map(names), eps_value=lines["eps"].map(_eps_value),
                             vs_next=next_in_rank(rows, lines))
        lines = with_radius(with_breaking_eps(lines), rows)
        lines = lines.sort_values(["dataset", "category", "threat", "eps_value", "calibrator", "rank"], kind="stable")
    page = out / "index.html"
    page.write_text(env.get_template("index.html").render(
        **common, title=title, heading=title, root="", lines=_records(lines), columns=[
            {"key": k, "label": label} for k, label in COLUMNS], filters=_filters(lines)))
    (out / "entries").mkdir(exist_ok=True)
    family = key(rows, ENTRY, MODEL_OPTION_KINDS, ignore=SMOOTHING_DRAWS)
    for entry, own in rows.groupby("entry", sort=False):
        relatives = rows[family == family[own.index[0]]]
        _write_card(env, out / "entries", entry, names[entry], own, relatives, lines, scores, examples, published,
                    common)
    return page


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("robustad.results", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["number"] = _number
    env.filters["eps"] = _eps_text
    return env


def _copy_static(target: Path) -> None:
    target.mkdir(exist_ok=True)
    for item in files("robustad.results").joinpath("static").iterdir():
        if item.name.endswith((".js", ".css")):
            (target / item.name).write_text(item.read_text())


def _number(value: object, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{float(value):.{digits}f}"


def _eps_text(value: object) -> str:
    """An eps for the table: ``k/255`` (two decimals of k), ``> grid`` when the grid never gets there."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return "> grid" if math.isinf(float(value)) else f"{255 * float(value):.2f}/255"


def _eps_value(eps: str) -> float:
    try:
        return float(Fraction(eps))
    except (ValueError, ZeroDivisionError):
        return float("nan")


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts for the templates, undefined numbers as None."""
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}
            for record in frame.to_dict(orient="records")]


def _defaults(lines: pd.DataFrame) -> dict[str, str]:
    """The filters' first choices: the first dataset and category, any threat model, the largest eps of that threat
    model (an L2 eps is not comparable with an L-inf one) and ``platt`` (or the first calibrator), so that each
    entry shows once."""
    def first(name: str, preferred: str) -> str:
        return preferred if (lines[name] == preferred).any() else lines[name].iloc[0]

    threat = first("threat", ANY_THREAT)
    same = lines[lines["threat"] == threat]
    sized = same["eps_value"].notna().any()
    largest = same.loc[same["eps_value"].idxmax(), "eps"] if sized else same["eps"].iloc[0]
    return {"dataset": lines["dataset"].iloc[0], "category": lines["category"].iloc[0],
            "threat": threat, "eps": largest, "calibrator": first("calibrator", "platt")}


def _filters(lines: pd.DataFrame) -> list[tuple[str, list[dict]]]:
    """Each filter's choices, the default one selected."""
    if lines.empty:
        return [(name, []) for name in FILTERS]
    defaults = _defaults(lines)
    return [(name, [{"value": v, "selected": v == defaults[name]} for v in dict.fromkeys(lines[name])])
            for name in FILTERS]


def _write_card(env: jinja2.Environment, folder: Path, entry: str, name: str, rows: pd.DataFrame,
                relatives: pd.DataFrame, lines: pd.DataFrame, scores: pd.DataFrame | None, examples: Path | None,
                published: pd.DataFrame | None, common: dict) -> None:
    assets = folder / entry
    assets.mkdir(exist_ok=True)
    own = lines[lines["entry"] == entry] if not lines.empty else lines
    chosen = _defaults(own)["calibrator"] if len(own) else ""
    categories = own[(own["calibrator"] == chosen) & own["threat"].str.startswith(ANY_THREAT)] if len(own) else own
    settings = {**entry_settings(rows), "datasets": ", ".join(dict.fromkeys(text(rows, "dataset")))}
    figures = _figures(rows, relatives, scores, assets)
    reference = beside_published(rows, published) if published is not None else pd.DataFrame()
    if not reference.empty:
        reference = reference[reference["our_categories"] > 0]
    data_columns = [c for c in DATA if c in rows]
    data = rows[data_columns].astype(str).groupby(["dataset", "category"], sort=False).agg(
        lambda values: ", ".join(dict.fromkeys(values))).reset_index()
    (folder / f"{entry}.html").write_text(env.get_template("entry.html").render(
        **common, title=f"{name} · robustad", heading=name, root="../", settings=settings,
        versions={c: ", ".join(v for v in dict.fromkeys(text(rows, c)) if v) for c in VERSIONS if c in rows},
        data_columns=data_columns, data=_records(data), calibrator=chosen, categories=_records(categories),
        figures=[{"src": f"{entry}/{f.name}", "caption": caption} for f, caption in figures],
        has_scores=scores is not None and not scores.empty, published=_records(reference),
        gallery=gallery(rows, examples, assets / "gallery", f"{entry}/gallery") if examples is not None else []))


def _figures(rows: pd.DataFrame, relatives: pd.DataFrame, scores: pd.DataFrame | None,
             assets: Path) -> list[tuple[Path, str]]:
    """Robustness curves per dataset and rounding (L-inf), then per dataset under L2 with the certified AUROC, then
    per dataset the AUROC against corruption severity, then
    (with scores) reliability diagrams and entropy. The L2 figure draws on the entry's ``relatives``: the rows of the
    same smoothed detector whatever its number of draws (``frame.SMOOTHING_DRAWS``), so a certificate from many
    draws stands beside the attacks through few."""
    figures = []
    linf = rows[~text(rows, "norm").isin(["l2", CORRUPTION])]
    for (dataset, rounded), part in linf.groupby([text(linf, "dataset"), text(linf, "round_8bit")], sort=False):
        figure = draw_metric_vs_eps(part, "auroc")
        if figure is None:
            continue
        suffix = "-8bit" if rounded == "True" else ""
        caption = f"{dataset}{', rounded to 8 bits' if suffix else ''}: AUROC against eps, one line per attack"
        figures.append((save(figure, inside(assets, f"robustness-{_slug(dataset)}{suffix}.png", "figure")), caption))
    for dataset, part in relatives.groupby(text(relatives, "dataset"), sort=False):
        attacked = part[(text(part, "norm") == "l2") & (attack_names(part) != NO_ATTACK)]
        certified = part[numeric(part, "cert_auroc").notna()]
        figure = draw_metric_vs_eps(attacked, "auroc", norm="l2", certified=certified)
        if figure is None:
            continue
        caption = (f"{dataset}: AUROC against L2 eps, one line per attack"
                   + (", and the certified AUROC against the radius" if len(certified) else ""))
        figures.append((save(figure, inside(assets, f"robustness-{_slug(dataset)}-l2.png", "figure")), caption))
    corrupted = corruption_rows(rows)
    for dataset, part in corrupted.groupby(text(corrupted, "dataset"), sort=False):
        for calibrator, same in part.groupby(text(part, "calibrator"), sort=False):
            figure = draw_corruptions(same, mean_over_corruptions(same))
            if figure is not None:
                caption = f"{dataset}: AUROC against corruption severity ({calibrator} rows), one line per corruption"
                figures.append((save(figure, inside(assets, f"corruptions-{_slug(dataset)}.png", "figure")), caption))
            break  # the AUROC does not depend on the calibrator: one figure
    for (dataset, norm), part in rows.groupby([text(rows, "dataset"), text(rows, "norm")], sort=False):
        figure = draw_unmoved(unmoved_curves(part, scores), norm=norm)
        if figure is not None:
            caption = f"{dataset}: share of eval images not yet moved across the threshold against eps (radius search)"
            name = f"unmoved-{_slug(dataset)}{'-l2' if norm == 'l2' else ''}.png"
            figures.append((save(figure, inside(assets, name, "figure")), caption))
    if scores is not None and not scores.empty:
        own = scores[scores["cell_hash"].isin(set(rows["cell_hash"]))]
        if not own.empty:
            figures.append((draw_reliability(own, assets), "reliability, clean against attacked eval images"))
            figures.append((draw_entropy(own, assets), "predictive entropy, clean against attacked"))
    return figures


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)

