"""The ``robustad`` command line: plugins, bench, leaderboard, report."""

from __future__ import annotations

import json
import sys

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError  # typer vendors click
from rich.console import Console
from rich.table import Table

from robustad import __version__
from robustad.components import KINDS
from robustad.errors import RobustadError
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


def main() -> None:
    """Console entry point: usage and input errors become one line on stderr and exit code 2."""
    try:
        app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("robustad: interrupted", file=sys.stderr)
        sys.exit(130)
    except NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx else "robustad --help", file=sys.stderr)
        sys.exit(2)
    except ClickException as exc:
        print(f"robustad: error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except RobustadError as exc:
        print(f"robustad: error: {exc}", file=sys.stderr)
        sys.exit(2)
