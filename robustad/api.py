"""The Python entry point: ``robustad.bench`` runs a grid as ``robustad bench`` does and returns its rows.

The command line is a thin layer over this module, so a notebook gets the same protocol: the noise control beside
every attack grid, the precision and device checks, the weights resolution and the output checks. Its keyword
arguments are ``robustad.declaration.Request``'s fields, checked by the same parsers as the command line.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustad.declaration import REQUEST_FIELDS, Request
from robustad.errors import RobustadError

if TYPE_CHECKING:  # imported when called, so that ``import robustad`` in a plugin stays light
    import pandas as pd
    from rich.console import Console

    from robustad.engine.settings import RunSettings


@dataclass
class BenchResult:
    """What a ``bench`` call did: the rows of the requested cells (finished now or before), and the cells that
    failed, each with its key and one-line reason."""

    rows: pd.DataFrame
    written: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)


def bench(*, console: Console | None = None, plugins: list | None = None, **values: Any) -> BenchResult:
    """Run the cross product of the given lists and append one leaderboard row per cell (see ``robustad bench
    --help`` for each argument). Lists are comma strings or Python lists; ``options`` maps ``kind.name.key`` to a
    value (``{"attack.pgd.steps": 20, "attack.worstcase.members": ["noise", "pgd"]}``) or lists ``--opt`` strings.

    ``save_examples`` N > 0 stores PNGs of the first N anomalous eval images of every attacked cell in
    ``examples_dir`` (default: ``<out without .csv>-examples`` beside it) for ``robustad site --examples``.
    ``plugins`` lists classes and modules that are not installed (a detector defined in a notebook): they are
    registered for this call only, checked like installed plugins, and each row they touch names them in its
    ``unpackaged`` column. A bad name or value raises ``RobustadError`` before any work; failed cells are in
    ``failures``.
    """
    return run(Request.of(values), console, plugins)


bench.__signature__ = inspect.Signature(  # type: ignore[attr-defined]  # help() and IDEs see every argument
    [inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=spec.default) for spec in REQUEST_FIELDS]
    + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None) for name in ("console", "plugins")],
    return_annotation=BenchResult)


def examples_folder(request: Request) -> Path:
    """Where ``--save-examples`` writes: ``--examples-dir``, else ``<out without .csv>-examples`` beside it."""
    out = request.out
    return request.examples_dir if request.examples_dir is not None else out.with_name(f"{out.stem}-examples")


def settings_of(request: Request) -> RunSettings:
    """How the request's cells are computed (nothing of it enters a cell's key)."""
    from robustad.engine.settings import RunSettings, default_threads
    from robustad.kit.weights import weights_identity

    weights = request.weights
    return RunSettings(
        data_root=request.data_root,
        weights_file=Path(weights) if weights_identity(weights).startswith("sha256:") else None,
        device=request.device, batch_size=request.batch_size,
        threads=default_threads() if request.threads is None else request.threads,
        pixel_metrics=request.pixel_metrics, save_scores=request.save_scores, save_examples=request.save_examples,
        examples_dir=examples_folder(request), resamples=request.resamples, executor=request.executor,
        ray_address=request.ray_address,
    )


def run(request: Request, console: Console | None = None, plugins: list | None = None) -> BenchResult:
    """``bench`` for a request already parsed (the command line's, from its flags and config file)."""
    import pandas as pd
    from rich.console import Console

    from robustad.engine.bench import check_outputs, run_bench
    from robustad.engine.guard import check_precision
    from robustad.engine.request import plan
    from robustad.plugins import get_registry
    from robustad.results.leaderboard import Leaderboard, read_rows
    from robustad.unpackaged import with_objects

    settings = settings_of(request)
    out = request.out
    check_outputs(out, settings.save_scores, settings.examples_dir if settings.save_examples else None)
    registry = get_registry()
    if plugins:
        if request.executor != "local":
            raise RobustadError(f"plugins with --executor {request.executor}: its workers load installed plugins "
                                "only; expected executor='local', or package the plugin")
        registry = with_objects(registry, plugins)
    made = plan(request, registry)
    cells = made.cells
    slow = check_precision(request.precision, request.device)
    if slow:
        warnings.warn(slow, RuntimeWarning, stacklevel=3)
    result = run_bench(made, settings, out, registry, console or Console(quiet=True))
    board = Leaderboard(out)
    wanted = {cell.key if board.holds(cell.key) else cell.legacy_key for cell in cells
              if board.holds(cell.key, cell.legacy_key)}
    rows = pd.DataFrame([row for row in read_rows(out) if row["cell_hash"] in wanted]) if wanted else pd.DataFrame()
    return BenchResult(rows=rows, written=len(result.written), skipped=result.skipped, failures=result.failures)


def compare(leaderboards: str | Path | list[str | Path], axis: str = "detector", a: str | None = None,
            b: str | None = None, *, metric: str = "adv_auroc", scores: str | Path | None = None,
            where: list[str] | None = None, resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """``robustad compare`` as a table: paired differences a - b of ``metric`` on the cells both share, with
    intervals, p-values and Holm's ``significant`` (``robustad.results.compare.compare``)."""
    import pandas as pd

    from robustad.results.compare import compare as compare_rows
    from robustad.results.frame import load_rows

    paths = [leaderboards] if isinstance(leaderboards, (str, Path)) else leaderboards
    rows = pd.concat([load_rows(Path(path), where or []) for path in paths], ignore_index=True)
    return compare_rows(rows, axis, a, b, metric=metric, scores=None if scores is None else Path(scores),
                        resamples=resamples, seed=seed)
