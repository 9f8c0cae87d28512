"""``robustad report`` and ``robustad site``: their inputs checked, then the site written (``site.build_site``).

Every input is checked (``check_paths``, ``load_scores``) before anything is drawn; a report is the site of one
run's rows, so both commands have one renderer."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from robustad.contained import inside
from robustad.errors import RobustadError
from robustad.results.scorefiles import read_score_file
from robustad.results.site import build_site, check_examples, check_out


def check_paths(out: Path, scores_dir: Path | None, examples: Path | None = None) -> None:
    """``--out`` must be a folder (new or existing), never an existing file; ``--scores`` and ``--examples``
    existing folders."""
    check_out(out)
    if scores_dir is not None:
        _check_scores_dir(scores_dir)
    check_examples(examples)


def _check_scores_dir(scores_dir: Path) -> None:
    if not scores_dir.is_dir():
        raise RobustadError(f"--scores {scores_dir} is not a folder; expected the --save-scores folder of a bench run")


def load_scores(rows: pd.DataFrame, scores_dir: Path) -> tuple[pd.DataFrame, int]:
    """The eval images' per-image scores of every row that has a score file, and how many rows have none."""
    _check_scores_dir(scores_dir)
    parts, missing = [], 0
    for _, row in rows.iterrows():
        path = inside(scores_dir, f"{row['cell_hash']}.csv", "leaderboard cell_hash (as a score file)")
        if not path.is_file():
            missing += 1
            continue
        frame = read_score_file(path)
        frame["calibrator"] = row["calibrator"]
        frame["cell_hash"] = row["cell_hash"]
        frame["attack"] = f"{row['attack']} {row['eps']} {row['surrogate']}".strip()
        parts.append(frame[frame["split"] == "eval"])
    return (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()), missing




def write_report(rows: pd.DataFrame, scores: pd.DataFrame | None, out: Path, examples: Path | None = None,
                 published: pd.DataFrame | None = None, source: str = "a leaderboard") -> Path:
    """The site of ``rows`` in ``out`` (``scores`` from ``load_scores``); returns its ``index.html``."""
    return build_site(rows, out, scores=scores, examples=examples, published=published, title="robustad report",
                      source=source)
