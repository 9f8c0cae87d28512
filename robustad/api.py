"""The Python entry point: ``robustad.bench`` runs a grid as ``robustad bench`` does and returns its rows.

The command line is a thin layer over this function, so a notebook gets the same protocol: the noise control
beside every attack grid, the precision and device checks, the weights resolution and the output checks.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustad.records import CERT_ALPHA

if TYPE_CHECKING:  # imported when called, so that ``import robustad`` in a plugin stays light
    import pandas as pd
    from rich.console import Console

Values = str | int | float | list | tuple  # a comma list as the command line types it, or a Python list


@dataclass
class BenchResult:
    """What a ``bench`` call did: the rows of the requested cells (finished now or before), and the cells that
    failed, each with its key and one-line reason."""

    rows: pd.DataFrame
    written: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)


def bench(
    *,
    dataset: Values = "demo",
    data_root: str | Path | None = None,
    category: Values = "all",
    shots: Values = "1",
    seeds: Values = "0",
    backbone: Values = "efficientnet_lite0",
    weights: str | Path = "",
    resolution: Values = "224",
    detector: Values = "anomalydino",
    surrogate: Values = "linear,score",
    attack: Values = "fgsm,pgd",
    noise_control: bool = True,
    eps: Values = "2/255,8/255",
    norm: str = "linf",
    cert_radius: Values = "",
    cert_alpha: float = CERT_ALPHA,
    calib: Values = "platt,isotonic,temperature:platt,none",
    calib_fraction: float = 0.3,
    options: list[str] | dict[str, Any] | None = None,
    precision: str = "fp32",
    round_8bit: bool = False,
    defense: Values = "none",
    bpda: str = "auto",
    eot: int | None = None,
    chunk: int | None = None,
    flag: Values = "entropy",
    flag_fpr: float = 0.05,
    device: str = "cpu",
    threads: int | None = None,
    batch_size: int = 8,
    resamples: int = 1000,
    pixel_metrics: bool = True,
    out: str | Path = "results/leaderboard.csv",
    save_scores: str | Path | None = None,
    save_examples: int = 0,
    examples_dir: str | Path | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    console: Console | None = None,
) -> BenchResult:
    """Run the cross product of the given lists and append one leaderboard row per cell (see ``robustad bench
    --help`` for each argument). Lists are comma strings or Python lists; ``options`` maps ``kind.name.key`` to a
    value (``{"attack.pgd.steps": 20, "attack.worstcase.members": ["noise", "pgd"]}``) or lists ``--opt`` strings.

    ``save_examples`` N > 0 stores PNGs of the first N anomalous eval images of every attacked cell in
    ``examples_dir`` (default: ``<out without .csv>-examples`` beside it) for ``robustad site --examples``.
    A bad name or value raises ``RobustadError`` before any work; failed cells are in ``failures``.
    """
    import pandas as pd
    from rich.console import Console

    from robustad.engine.bench import check_outputs, run_bench
    from robustad.engine.guard import check_precision
    from robustad.engine.request import BenchRequest, build_cells, with_noise_control
    from robustad.engine.settings import RunSettings, default_chunk, default_threads
    from robustad.kit.weights import weights_identity
    from robustad.plugins import get_registry
    from robustad.results.leaderboard import Leaderboard, read_rows

    out = Path(out)
    root = None if data_root is None else Path(data_root)
    scores = None if save_scores is None else Path(save_scores)
    examples = Path(examples_dir) if examples_dir is not None else out.with_name(f"{out.stem}-examples")
    weights = str(weights)
    settings = RunSettings(
        data_root=root, weights_file=Path(weights) if weights_identity(weights).startswith("sha256:") else None,
        device=device, batch_size=batch_size, threads=default_threads() if threads is None else threads,
        pixel_metrics=pixel_metrics, save_scores=scores, save_examples=save_examples, examples_dir=examples,
        resamples=resamples, executor=executor, ray_address=ray_address,
    )
    check_outputs(out, scores, examples if save_examples else None)
    request = BenchRequest(
        datasets=dataset, data_root=root, categories=category, shots=shots, seeds=seeds, backbones=backbone,
        weights=weights, resolutions=resolution, detectors=detector, surrogates=surrogate,
        attacks=with_noise_control(attack, norm) if noise_control else attack, eps=eps, calibrators=calib,
        calib_fraction=calib_fraction, options=options or [], precision=precision, round_8bit=round_8bit,
        defenses=defense, bpda=bpda, eot=eot, chunk=default_chunk(device) if chunk is None else chunk,
        flags=flag, flag_fpr=flag_fpr, norm=norm, cert_radii=cert_radius, cert_alpha=cert_alpha,
    )
    registry = get_registry()
    cells = build_cells(request, registry)
    slow = check_precision(precision, device)
    if slow:
        warnings.warn(slow, RuntimeWarning, stacklevel=2)
    result = run_bench(cells, settings, out, registry, console or Console(quiet=True))
    board = Leaderboard(out)
    wanted = {cell.key if board.holds(cell.key) else cell.legacy_key for cell in cells
              if board.holds(cell.key, cell.legacy_key)}
    rows = pd.DataFrame([row for row in read_rows(out) if row["cell_hash"] in wanted]) if wanted else pd.DataFrame()
    return BenchResult(rows=rows, written=len(result.written), skipped=result.skipped, failures=result.failures)
