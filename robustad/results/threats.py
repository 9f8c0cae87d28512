"""The threat label of an attacked row: one rule for the site and the README tables.

``white-box``: the gradient is the detector's own score's. Through another surrogate (a linear head), ``transfer``
only where nothing the detector scores chooses the result: a single gradient step (FGSM). Where the kept iterate
or member is picked by the real score (PGD's and Auto-PGD's best iterate, Square's queries, a worst case's
per-image choice), the attacker reads the detector's output, so the row is ``gray-box``, not a transfer.
"""

from __future__ import annotations

import pandas as pd

from robustad.results.frame import text

WHITE_BOX, GRAY_BOX, TRANSFER = "white-box", "gray-box", "transfer"


def threat(white_box: bool, single_step: bool) -> str:
    """The label of an attack through a white-box surrogate or not, taking one gradient step or more."""
    if white_box:
        return WHITE_BOX
    return TRANSFER if single_step else GRAY_BOX


def single_step(rows: pd.DataFrame) -> pd.Series:
    """Per row, from the attack settings it recorded: one gradient step, one restart, no queries, no members."""
    return ((text(rows, "steps") == "1") & text(rows, "restarts").isin(["", "1"])
            & (text(rows, "queries") == "") & text(rows, "members").isin(["", "[]"]))


def row_threats(rows: pd.DataFrame) -> pd.Series:
    """Per row, ``threat`` from its recorded ``white_box`` fact and settings; empty where the row records no
    surrogate (clean-only rows, the noise control)."""
    white = text(rows, "white_box")
    labels = [threat(w == "True", one) if w in ("True", "False") else ""
              for w, one in zip(white, single_step(rows))]
    return pd.Series(labels, index=rows.index, dtype=object)
