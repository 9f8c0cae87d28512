"""The ``robustad`` command line: plugins, bench, leaderboard, report, audit."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer._click.exceptions import BadParameter, ClickException, NoArgsIsHelpError  # typer vendors click

from robustad import __version__, interrupts
from robustad.components import KINDS
from robustad.errors import RobustadError, one_line
from robustad.plugins import get_registry

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Measure how few-shot image anomaly detectors hold up under attack and how well they are calibrated.",
)
console = Console()
err_console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        print(f"robustad {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """robustad: adversarial robustness and calibration of few-shot anomaly detectors."""


@app.command()
def plugins(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List every registered component by kind, with the distribution it came from."""
    registry = get_registry()
    rows = [
        {"kind": kind, "name": c.name, "description": c.description, "plugin": c.plugin,
         "distribution": c.distribution,
         "options": {o.name: o.default for o in c.options}}
        for kind in KINDS for c in sorted(registry.components(kind).values(), key=lambda c: c.name)
    ]
    broken = [{"plugin": b.plugin, "distribution": b.distribution, "error": b.error} for b in registry.broken]
    if as_json:
        print(json.dumps({"components": rows, "broken": broken}, indent=2, default=str))
        return
    table = Table(title="robustad plugins")
    for column in ("kind", "name", "description", "distribution"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["kind"], row["name"], row["description"], row["distribution"])
    for b in broken:
        table.add_row("[red]broken[/red]", b["plugin"], f"[red]{b['error']}[/red]", b["distribution"])
    console.print(table)


@app.command()
def bench(
    dataset: str = typer.Option("demo", help="Dataset plugin(s), comma-separated."),
    data_root: Path = typer.Option(None, help="Dataset root folder (the demo set needs none)."),
    category: str = typer.Option("all", help="Categories, comma-separated, or 'all' present under the root."),
    shots: str = typer.Option("1", help="Reference images k, comma-separated; 'all' = full-shot."),
    seeds: str = typer.Option("0", help="Seeds, comma-separated (the protocol's full grid uses 0,1,2)."),
    backbone: str = typer.Option("efficientnet_lite0", help="Backbone plugin(s), comma-separated."),
    weights: str = typer.Option("", help="Weights file for the backbone (default: its own source)."),
    resolution: str = typer.Option("224", help="Shorter-edge resolution(s); AnomalyDINO uses 448."),
    detector: str = typer.Option("anomalydino", help="Detector plugin(s), comma-separated."),
    surrogate: str = typer.Option("linear,score", help="Surrogate plugin(s), comma-separated."),
    attack: str = typer.Option("fgsm,pgd", help="Attack plugin(s), e.g. fgsm,pgd:20,apgd,square,worstcase or none."),
    noise_control: bool = typer.Option(True, help="Add the noise control (attack 'noise') to every attack grid."),
    eps: str = typer.Option("2/255,8/255", help="Budgets in [0,1] pixel units of the --norm ball, e.g. 1/255,2/255 "
                                                "(L-inf), 0.25,0.5 (L2), or severities 0-5 (corruption)."),
    norm: str = typer.Option("linf", help="Threat model of the attacks: linf, l2 (eps the L2 norm of the "
                                          "perturbation of the [0,1] resized image), or corruption (eps a "
                                          "severity 0-5 of attack corruption:<name>)."),
    cert_radius: str = typer.Option("", help="L2 radii at which to certify a median-smoothing defense, e.g. "
                                             "0.25,0.5,1.0: one clean-only row per radius with cert_auroc."),
    cert_alpha: float = typer.Option(0.001, help="Probability that a certified bound fails, per bound and image."),
    calib: str = typer.Option("platt,isotonic,temperature:platt,none",
                              help="Calibrator plugin(s), comma-separated (temperature:platt: T fitted on Platt's "
                                   "smoothed targets, finite on separable calib scores)."),
    calib_fraction: float = typer.Option(0.3, help="Share of the test split used for calibration."),
    opt: list[str] = typer.Option([], help="Plugin option kind.name.key=value (repeatable)."),
    precision: str = typer.Option("fp32", help="fp32, bf16 (autocast; kNN stays fp32) or fp16 (GPU only)."),
    round_8bit: bool = typer.Option(False, help="Round adversarial images to the 8-bit grid before scoring."),
    defense: str = typer.Option("none", help="Defense plugin(s) in front of the backbone, e.g. jpeg,smoothing."),
    bpda: str = typer.Option("auto", help="Gradients through a non-differentiable defense: auto (identity), "
                                         "identity, or off (the naive attacker)."),
    eot: int = typer.Option(None, help="EOT draws per gradient step through a randomized defense [default: 8]."),
    chunk: int = typer.Option(None, help="Images per model call, consecutive in sample order; part of the cell "
                                         "(batched kernels change the last bits) [default: 1 on cpu, 16 on cuda]."),
    flag: str = typer.Option("entropy", help="Attack flag(s), comma-separated: entropy, squeeze, consistency; "
                                            "one row per flag."),
    flag_fpr: float = typer.Option(0.05, help="False-flag rate on the clean calib images that sets each flag's "
                                              "threshold."),
    device: str = typer.Option("cpu", help="torch device: cpu or cuda."),
    threads: int = typer.Option(None, help="torch CPU threads (default: OMP_NUM_THREADS when set, else the cores "
                                           "this process may use); recorded per row."),
    batch_size: int = typer.Option(8, help="Images per forward/attack batch (rows do not depend on it)."),
    resamples: int = typer.Option(1000, help="Bootstrap resamples for the 95 % intervals (0: none)."),
    pixel_metrics: bool = typer.Option(True, help="Compute pixel AUROC and AU-PRO where masks exist."),
    out: Path = typer.Option(Path("results/leaderboard.csv"), help="Leaderboard CSV to append to."),
    save_scores: Path = typer.Option(None, help="Folder for per-image scores of every cell."),
    save_examples: int = typer.Option(0, help="PNGs of the first N anomalous eval images of every attacked cell, "
                                              "for robustad site --examples (0: none)."),
    examples_dir: Path = typer.Option(None, help="Folder for --save-examples (default: <out without .csv>-examples "
                                                 "beside the leaderboard)."),
    executor: str = typer.Option("local", help="local: in this process; ray: one Ray task per prefix group "
                                               "(pip install 'robustad[ray]')."),
    ray_address: str = typer.Option(None, help="Ray cluster to join: auto, HOST:PORT or ray://HOST:PORT "
                                               "(default: start a local Ray instance)."),
) -> None:
    """Run the cross product of the given lists and append one leaderboard row per cell.

    Exit code 1 when some cells failed (one line each on stderr); the other rows land; a rerun does the rest.
    """
    from robustad.api import bench as run

    result = run(
        dataset=dataset, data_root=data_root, category=category, shots=shots, seeds=seeds, backbone=backbone,
        weights=weights, resolution=resolution, detector=detector, surrogate=surrogate, attack=attack,
        noise_control=noise_control, eps=eps, norm=norm, cert_radius=cert_radius, cert_alpha=cert_alpha, calib=calib,
        calib_fraction=calib_fraction, options=opt,
        precision=precision, round_8bit=round_8bit, defense=defense, bpda=bpda, eot=eot, chunk=chunk, flag=flag,
        flag_fpr=flag_fpr, device=device,
        threads=threads, batch_size=batch_size, resamples=resamples, pixel_metrics=pixel_metrics, out=out,
        save_scores=save_scores, save_examples=save_examples, examples_dir=examples_dir, executor=executor,
        ray_address=ray_address, console=console,
    )
    for _, message in result.failures:
        err_console.print(f"robustad: cell failed: {message}", highlight=False, soft_wrap=True)
    if result.failures:
        raise typer.Exit(1)


@app.command()
def leaderboard(
    csv_path: Path = typer.Argument(Path("results/leaderboard.csv"), metavar="CSV", help="Leaderboard CSV."),
    where: list[str] = typer.Option([], help="Keep rows with column=value (repeatable)."),
    columns: str = typer.Option(None, help="Columns to show, comma-separated: cell settings and metrics "
                                           "(default: the varying settings, clean_auroc, adv_auroc, noise)."),
    intervals: bool = typer.Option(False, "--intervals", help="Show the mean 95 % interval of each metric."),
    output_format: str = typer.Option("table", "--format", help="table, csv, json or markdown (csv and json "
                                                                 "also carry the shared settings as columns)."),
    published: Path = typer.Option(Path("results/published.csv"), help="Published reference rows."),
) -> None:
    """Mean +- std over seeds (and 95 % intervals) beside the noise control and published reference numbers."""
    from robustad.results.aggregate import beside_published, load_published, thread_counts
    from robustad.results.frame import load_rows
    from robustad.results.tables import parse_columns, parse_format, print_table, render_text, summarise, summary_table

    fmt = parse_format(output_format)
    chosen = None if columns is None else parse_columns(columns)
    rows = load_rows(csv_path, where)
    references = load_published(published)
    threads = thread_counts(rows)
    if len(threads) > 1:
        print(f"robustad: warning: these rows were made with different torch_threads ({', '.join(threads)}); "
              "adversarial numbers depend on the thread count, compare rows made with the same one", file=sys.stderr)
    summary = summarise(rows, chosen)
    seeds = ", ".join(sorted(set(rows["seed"].astype(str)), key=lambda s: (len(s), s)))
    title = f"{csv_path}: {len(rows)} rows, mean±std over seeds {seeds}"
    if fmt != "table":
        sys.stdout.write(render_text(summary, fmt, intervals, title))
        return
    print_table(console, summary_table(summary, title, intervals))
    reference = beside_published(rows, references)
    matched = reference[reference["our_categories"] > 0] if not reference.empty else reference
    if not matched.empty:
        shown = [c for c in matched.columns if c not in ("citation", "source") and matched[c].nunique() > 1]
        same = ", ".join(f"{c}={matched[c].iloc[0]}" for c in matched.columns
                         if c not in shown and c != "citation")
        table = Table(title=escape(f"published reference rows ({published})\n{same}"), title_justify="left",
                      box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        for column in shown:
            table.add_column(column, no_wrap=True)
        for _, line in matched.iterrows():
            table.add_row(*[escape(str(line[c])) for c in shown])
        print_table(console, table)
        for source, citation in matched.drop_duplicates("source")[["source", "citation"]].itertuples(index=False):
            console.print(f"{source}: {citation}", highlight=False, markup=False)


@app.command()
def site(
    csv_path: Path = typer.Argument(Path("results/leaderboard.csv"), metavar="CSV", help="Leaderboard CSV."),
    out: Path = typer.Option(Path("results/site"), help="Folder for the site (index.html opens from disk)."),
    scores: Path = typer.Option(None, help="The --save-scores folder, for reliability diagrams."),
    examples: Path = typer.Option(None, help="The --save-examples folder, for the adversarial gallery."),
    where: list[str] = typer.Option([], help="Keep rows with column=value (repeatable)."),
    published: Path = typer.Option(Path("results/published.csv"), help="Published reference rows."),
) -> None:
    """A static site: entries ranked by worst-case adversarial AUROC (sortable, filterable), one card per entry
    with its settings, versions, robustness curves, reliability diagrams and adversarial gallery."""
    _render(csv_path, out, scores, examples, where, published, "site")


@app.command()
def report(
    csv_path: Path = typer.Argument(Path("results/leaderboard.csv"), metavar="CSV", help="Leaderboard CSV."),
    out: Path = typer.Option(Path("results/report"), help="Folder for the pages and figures."),
    scores: Path = typer.Option(None, help="The --save-scores folder, for reliability and entropy plots."),
    examples: Path = typer.Option(None, help="The --save-examples folder, for the adversarial gallery."),
    where: list[str] = typer.Option([], help="Keep rows with column=value (repeatable)."),
    published: Path = typer.Option(Path("results/published.csv"), help="Published reference rows."),
) -> None:
    """The site of one run (AUROC vs eps with 95 % intervals and the noise control, reliability diagrams, entropy
    histograms, the gallery), drawn by the same renderer as ``robustad site``. Every input is checked before
    anything is drawn."""
    _render(csv_path, out, scores, examples, where, published, "report")


def _render(csv_path: Path, out: Path, scores: Path | None, examples: Path | None, where: list[str],
            published: Path, kind: str) -> None:
    """``site`` and ``report``: inputs checked, rows and scores loaded, then the pages written."""
    from robustad.results.aggregate import load_published
    from robustad.results.frame import load_rows
    from robustad.results.report import check_paths, load_scores
    from robustad.results.site import build_site

    check_paths(out, scores, examples)
    rows = load_rows(csv_path, where)
    per_image = None
    if scores is not None:
        per_image, missing = load_scores(rows, scores)
        if missing:
            print(f"robustad: warning: {missing} of {len(rows)} rows have no score file in {scores}; the reliability "
                  "and entropy plots leave them out", file=sys.stderr)
    references = load_published(published)
    try:
        page = build_site(rows, out, scores=per_image, examples=examples, published=references,
                          title=f"robustad {kind}" if kind == "report" else "robustad leaderboard",
                          source=csv_path.name)
    except OSError as error:  # what the checks could not foresee: a full disk, a folder made read-only meanwhile
        raise RobustadError(f"--out {out}: cannot write the {kind} ({one_line(error)})") from None
    console.print(f"{kind} written to {page}", highlight=False, soft_wrap=True)


@app.command()
def audit(
    csv_path: Path = typer.Argument(Path("results/leaderboard.csv"), metavar="CSV", help="Leaderboard CSV."),
    where: list[str] = typer.Option([], help="Keep rows with column=value (repeatable)."),
    tolerance: float = typer.Option(None, min=0, help="An AUROC counts as higher when it exceeds by more "
                                                      "[default: 1e-9]."),
    zero_grad_threshold: float = typer.Option(None, min=0, max=1, help="Gradient masking: largest share of images "
                                                                        "with a zero gradient [default: 0.5]."),
) -> None:
    """Sanity checks (Carlini et al. 2019; AutoAttack): the worst case does not weaken as eps grows, white-box beats
    transfer, attacks beat the noise control, no gradient masking. One line per failure; exit code 1 if any."""
    from robustad.results.audit import TOLERANCE, ZERO_GRAD_THRESHOLD, run_checks
    from robustad.results.frame import load_rows

    rows = load_rows(csv_path, where)
    results = run_checks(rows, tolerance=TOLERANCE if tolerance is None else tolerance,
                         zero_grad_threshold=ZERO_GRAD_THRESHOLD if zero_grad_threshold is None
                         else zero_grad_threshold)
    failures = [violation for result in results for violation in result.violations]
    for violation in failures:
        print(violation.line())
    compared = ", ".join(f"{result.check} {result.compared}" for result in results)
    if failures:
        print(f"{len(rows)} rows, {len(failures)} failed checks (comparisons: {compared})")
        raise typer.Exit(1)
    print(f"{len(rows)} rows, all checks pass (comparisons: {compared})")


def main() -> None:
    """Console entry point: usage and input errors become one line on stderr and exit code 2."""
    warnings.showwarning = _one_line_warning
    interrupts.install()
    try:
        # Without standalone mode typer returns the exit code of typer.Exit (Ctrl-C becomes 130).
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx else "robustad --help", file=sys.stderr)
        code = 2
    except ClickException as exc:
        print(f"robustad: error: {_click_message(exc, sys.argv[1:])}", file=sys.stderr)
        code = exc.exit_code
    except (RobustadError, Warning, OSError) as exc:  # a Warning here was made an error by -W error; an OSError
        print(f"robustad: error: {one_line(exc)}", file=sys.stderr)  # is a path the checks did not foresee
        code = 2
    except (typer.Abort, KeyboardInterrupt):  # KeyboardInterrupt: a Ctrl-C outside click's own handling
        code = 1
    interrupts.settle()
    if interrupts.requested():
        code = 130
    if code == 130:
        print("robustad: interrupted; finished rows are in the leaderboard", file=sys.stderr)
        interrupts.exit_now(130)
    sys.exit(code if isinstance(code, int) else 0)


def _click_message(exc: ClickException, args: list[str]) -> str:
    """Click's message on one line, naming the value the user typed for a bad option (click's own leaves it out:
    "Invalid value for '--resamples': Input should be a valid integer")."""
    message = one_line(exc.format_message())
    param = getattr(exc, "param", None)
    value = _typed_value(getattr(param, "opts", []), args) if isinstance(exc, BadParameter) else None
    if value is None:
        return message
    head, sep, reason = message.partition(": ")
    return f"{head}: {value!r}{sep}{reason}" if sep else f"{message} (got {value!r})"


def _typed_value(names: list[str], args: list[str]) -> str | None:
    """The value last given to an option called one of ``names`` (``--name VALUE`` or ``--name=VALUE``)."""
    value = None
    for index, arg in enumerate(args):
        name, sep, rest = arg.partition("=")
        if name in names and name.startswith("-"):
            value = rest if sep else (args[index + 1] if index + 1 < len(args) else None)
    return value


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings reach the user as one line, without the source line Python would print."""
    print(f"robustad: warning: {one_line(message)}", file=sys.stderr)
