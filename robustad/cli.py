"""The ``robustad`` command line: plugins, bench, leaderboard, report, audit."""

from __future__ import annotations

import inspect
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from typer._click.core import ParameterSource  # typer vendors click
from typer._click.exceptions import BadParameter, ClickException, NoArgsIsHelpError

from robustad import interrupts
from robustad.components import KINDS
from robustad.declaration import GRID, REQUEST_FIELDS, RUN, Request, flag_of
from robustad.errors import RobustadError, one_line
from robustad.plugins import get_registry
from robustad.version import __version__

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
        table.add_row(*(_shown(row[c]) for c in ("kind", "name", "description", "distribution")))
    for b in broken:
        table.add_row(Text("broken", style="red"), _shown(b["plugin"]), _shown(b["error"], "red"),
                      _shown(b["distribution"]))
    console.print(table)


def _shown(value: object, style: str = "") -> Text:
    """Text a plugin supplied, shown as it is written: never read as rich markup, and control characters (a
    terminal escape sequence) shown as escapes instead of being sent to the terminal."""
    text = "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode() for c in str(value))
    return Text(text, style=style)


def bench(ctx: typer.Context, config: Path | None, dry_run: bool, **values: object) -> None:
    """Run the cross product of the given lists and append one leaderboard row per cell.

    Exit code 1 when some cells failed (one line each on stderr); the other rows land; a rerun does the rest.
    Options are those of robustad.bench; --config reads them from a TOML file, and options given here override it.
    """
    from robustad.configfile import read_config

    typed = {name: value for name, value in values.items()
             if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE}
    request = Request.of(typed, name=lambda key: flag_of(FIELDS[key]),
                         defaults=read_config(config) if config is not None else None)
    if dry_run:
        from robustad.dryrun import print_plan

        print_plan(request)
        return
    from robustad.api import run

    result = run(request, console=console)
    for _, message in result.failures:
        err_console.print(f"robustad: cell failed: {message}", highlight=False, soft_wrap=True)
    if result.failures:
        raise typer.Exit(1)


def _declared_command(function: Callable[..., None]) -> Callable[..., None]:
    """``function`` with a signature Typer reads as one option per ``Request`` field (its flag, help, default and
    type), grouped as grid and run settings, beside ``--config`` and ``--dry-run``."""
    parameters = [
        inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context),
        inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path], default=typer.Option(
            None, help="TOML file of robustad.bench's keys (options given here override it).")),
        inspect.Parameter("dry_run", inspect.Parameter.KEYWORD_ONLY, annotation=bool, default=typer.Option(
            False, "--dry-run", help="Print the cells, their groups, what the leaderboard already holds and the "
                                     "model passes needed; compute nothing.")),
    ]
    for spec in REQUEST_FIELDS:
        meta = spec.metadata
        cli = {list: list[str], bool: bool}.get(meta["cli"], Optional[meta["cli"]])
        default = [] if meta["cli"] is list else spec.default
        names = [flag_of(spec)] if meta["flag"] else []
        shown = f" [default: {meta['shown']}]" if meta["shown"] else ""  # as click shows its own, without markup
        option = typer.Option(default, *names, help=escape(meta["help"] + shown), show_default=not shown,
                              rich_help_panel=PANELS[meta["role"]])
        parameters.append(inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, annotation=cli,
                                            default=option))
    function.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    function.__annotations__ = {p.name: p.annotation for p in parameters}
    return function


PANELS = {GRID: "Grid (what each cell is)", RUN: "Run (how and where it is computed)"}
FIELDS = {spec.name: spec for spec in REQUEST_FIELDS}
app.command()(_declared_command(bench))


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
    transfer, attacks beat the noise control, no gradient masking; every value within its declared range. One line
    per failure; exit code 1 if any."""
    from robustad.results.audit import TOLERANCE, ZERO_GRAD_THRESHOLD, run_checks
    from robustad.results.frame import load_rows

    rows = load_rows(csv_path, where, keep_impossible=True)
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



@app.command()
def compare(
    csv_paths: list[Path] = typer.Argument(..., metavar="CSV...", help="Leaderboard CSV(s); rows of several are "
                                                                      "compared together."),
    axis: str = typer.Option("detector", help="What differs: a cell setting (detector, defense, calibrator, "
                                              "attack, flag, ...) or entry."),
    a: str = typer.Option(None, help="One value of the axis (default: every pair of values)."),
    b: str = typer.Option(None, help="The other value."),
    metric: str = typer.Option("adv_auroc", help="The leaderboard column compared."),
    scores: Path = typer.Option(None, help="The --save-scores folder: resample the same images for both."),
    where: list[str] = typer.Option([], help="Keep rows with column=value (repeatable)."),
    resamples: int = typer.Option(1000, help="Bootstrap resamples."),
    seed: int = typer.Option(0, help="Seed of the bootstrap draws."),
) -> None:
    """Paired differences a - b on the cells both share, with paired two-level bootstrap intervals (DeLong for a
    single-seed AUROC with --scores) and Holm's correction over categories, eps and attacks."""
    from robustad.results.compare import compare as compare_rows
    from robustad.results.compare import render
    from robustad.results.frame import load_rows

    if scores is not None and not scores.is_dir():
        raise RobustadError(f"--scores {scores} is not a folder; expected the --save-scores folder of a bench run")
    import pandas as pd

    rows = pd.concat([load_rows(path, where) for path in csv_paths], ignore_index=True)
    table = compare_rows(rows, axis, a, b, metric=metric, scores=scores, resamples=resamples, seed=seed)
    print(render(table), end="")

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
