"""Per-image score files (``bench --save-scores``): one reader, checked, for the report and ``compare``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from robustad.errors import RobustadError
from robustad.results.frame import numeric

SCORE_COLUMNS = ("path", "split", "label", "clean_score", "clean_prob", "adv_score", "adv_prob")


def read_score_file(path: Path) -> pd.DataFrame:
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
