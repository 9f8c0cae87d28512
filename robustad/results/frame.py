"""Leaderboard rows as a DataFrame: reading them, numbers from text cells, and which rows may be compared.

Two rows are comparable when they agree on everything that decides which images are scored and how (the
``MODEL_IDENTITY`` columns and the dataset/backbone/detector options): they then differ only in the perturbation
(attack, surrogate, eps) or the calibrator.
"""

from __future__ import annotations

import csv
import json
import warnings
from dataclasses import fields
from fractions import Fraction
from pathlib import Path

import pandas as pd

from robustad.components import parse_spec
from robustad.errors import RobustadError
from robustad.records import (
    MODEL,
    NO_ATTACK,
    NOISE_CONTROL,
    SPLIT,
    STAGE_OPTION_KINDS,
    THREAT,
    Cell,
    fields_with,
)
from robustad.results.leaderboard import LeaderboardWarning, read_rows, row_text

MODEL_IDENTITY = fields_with("config", "replicate", stages=(SPLIT, MODEL, THREAT))
"""Rows agreeing on these score the same images the same way (``round_8bit`` included: it decides which images
are scored); they differ only in the perturbation and the calibrator."""
LATER_DEFAULTS = {f.name: row_text(f.name, f.metadata["before"]) for f in fields(Cell)
                  if f.metadata["since"] > 1 and f.metadata["role"] != "key"}
"""What an empty cell of a field added after the first release means: the value that rows written before its
column existed ran with (the field's default, or its ``before``: ``protocol`` 1, ``keep_clean`` False)."""
CONTROL_IDENTITY = fields_with("config", "replicate", stages=(SPLIT, MODEL, THREAT), gradient=False)
"""``MODEL_IDENTITY`` less how attacks take gradients (BPDA, EOT): a noise control takes none, so one control
serves every attack on the same model and threat model, whatever their BPDA and EOT."""
MODEL_OPTION_KINDS = (*STAGE_OPTION_KINDS[SPLIT], *STAGE_OPTION_KINDS[MODEL])
PERTURBATION = fields_with("perturbation")
CERTIFICATE = ("cert_radius", "cert_alpha")
"""What a certified row's ``cert_auroc`` depends on beside the model: rows differing in them are different rows."""
SCORED_MODEL = fields_with("config", "replicate", stages=(SPLIT, MODEL))
"""Rows agreeing on these (and the options of ``MODEL_OPTION_KINDS``) score with the same (defended) detector,
whatever their threat model: a certified row (clean-only) and the attacked rows of that detector."""
SMOOTHING_DRAWS = ("defense:samples", "defense:report_samples")
"""How many draws estimate a smoothed score (an ``ignore`` for ``key``): certified rows (many draws) and attacked
rows (few selection draws, each EOT step pays for them all) of one smoothed detector differ in them and nothing
else; what their reported numbers rest on is the ``report_draws`` column."""
NOISE_COLUMNS = ("adv_auroc", "adv_auroc_ci_low", "adv_auroc_ci_high")
_SEP = "\x1f"


def load_rows(path: Path, where: list[str], *, keep_impossible: bool = False) -> pd.DataFrame:
    """The rows of a leaderboard CSV kept by ``--where``; a missing, unreadable or empty file is a one-line error.
    Rows holding a value they cannot hold (``ranges.impossible``) are left out with one warning, unless
    ``keep_impossible`` (``audit``, which reports them)."""
    if not path.is_file():
        raise RobustadError(f"leaderboard {path} does not exist or is not a file; run `robustad bench` first")
    try:
        rows = read_rows(path)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise RobustadError(f"leaderboard {path} is not a CSV text file ({exc})") from None
    if not rows:
        raise RobustadError(f"leaderboard {path} has no rows; run `robustad bench` first")
    frame = pd.DataFrame(rows)
    for name, default in LATER_DEFAULTS.items():  # so that older rows group and compare with newer ones
        frame[name] = frame[name].replace("", default)
    repeated = frame["cell_hash"].duplicated()
    if repeated.any():
        warnings.warn(f"{path}: {int(repeated.sum())} row(s) repeat the key of an earlier row (copied by hand?); "
                      "each cell is counted once", LeaderboardWarning, stacklevel=2)
        frame = frame[~repeated]
    if not keep_impossible:
        frame = without_impossible(frame, str(path))
        if frame.empty:
            raise RobustadError(f"leaderboard {path}: every row holds impossible values; `robustad audit {path}` "
                                "lists them")
    kept = filter_rows(frame, where)
    if kept.empty:
        raise RobustadError(f"no row of {path} matches --where {' '.join(where)}")
    return kept


def without_impossible(rows: pd.DataFrame, source: str) -> pd.DataFrame:
    """The rows less those holding an impossible value, with one warning naming the first of them."""
    from robustad.results.ranges import impossible

    found = impossible(rows)
    if not found:
        return rows
    bad = list(dict.fromkeys(item.index for item in found))
    warnings.warn(f"{source}: {len(bad)} row(s) hold impossible values and are left out ({found[0].line()}"
                  f"{f'; {len(found) - 1} more' if len(found) > 1 else ''}); `robustad audit` lists them",
                  LeaderboardWarning, stacklevel=3)
    return rows.drop(index=bad)


def filter_rows(rows: pd.DataFrame, filters: list[str]) -> pd.DataFrame:
    """Keep rows matching every ``column=value`` filter (values compared as text)."""
    for condition in filters:
        column, sep, value = condition.partition("=")
        if not sep or column not in rows.columns:
            raise RobustadError(f"--where {condition!r}: expected column=value with a leaderboard column")
        rows = rows[text(rows, column) == value]
    return rows


def text(rows: pd.DataFrame, column: str) -> pd.Series:
    """A column as text, undefined cells (and a missing column) as the empty string."""
    if column not in rows:
        return pd.Series("", index=rows.index, dtype=object)
    return rows[column].map(lambda value: "" if value is None or pd.isna(value) else str(value)).astype(object)


def numeric(rows: pd.DataFrame, column: str) -> pd.Series:
    """A column as floats: empty cells (and a missing column) are NaN, i.e. undefined; other text is an error."""
    if column not in rows:
        return pd.Series(float("nan"), index=rows.index, dtype=float)
    values = pd.to_numeric(rows[column], errors="coerce")
    bad = values.isna() & (text(rows, column).str.strip() != "")
    if bad.any():
        raise RobustadError(f"column {column}: {rows[column][bad].iloc[0]!r} is not a number "
                            "(expected a number or an empty cell)")
    return values.astype(float)


def fractions(rows: pd.DataFrame, column: str) -> pd.Series:
    """A column of canonical radii (``1/2``, ``0.3``) as floats: empty cells are NaN; other text is an error."""
    def value(cell: str) -> float:
        try:
            return float(Fraction(cell)) if cell.strip() else float("nan")
        except (ValueError, ZeroDivisionError):
            raise RobustadError(f"column {column}: {cell!r} is not a number (expected a fraction like 1/2, a "
                                "decimal or an empty cell)") from None

    return text(rows, column).map(value).astype(float)


def attack_names(rows: pd.DataFrame) -> pd.Series:
    """The plugin name of each row's attack spec: ``pgd:20`` -> ``pgd``, ``torchattacks:MIFGSM`` -> ``torchattacks``."""
    return text(rows, "attack").map(lambda spec: parse_spec(spec)[0] if spec else "")


def is_attack(rows: pd.DataFrame) -> pd.Series:
    """Rows of a real attack: neither the noise control nor a clean-only row."""
    return ~attack_names(rows).isin([NOISE_CONTROL, NO_ATTACK, ""])


def options_key(rows: pd.DataFrame, *kinds: str, ignore: tuple[str, ...] = ()) -> pd.Series:
    """Canonical JSON of the options of the given component kinds, per row, less the options named in ``ignore``
    as ``kind:option`` (``defense:samples``: any defense's option ``samples``)."""
    def kept(component: str, values: object) -> object:
        kind = component.split(".")[0]
        if not isinstance(values, dict):
            return values
        return {name: value for name, value in values.items() if f"{kind}:{name}" not in ignore}

    def chosen(options: str) -> str:
        try:
            parsed = json.loads(options or "{}")
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise RobustadError(f"leaderboard column options: {options!r} is not the JSON object robustad writes")
        return json.dumps({k: kept(k, v) for k, v in parsed.items() if k.split(".")[0] in kinds}, sort_keys=True)

    return text(rows, "options").map(chosen)


def key(rows: pd.DataFrame, columns: tuple[str, ...] | list[str], option_kinds: tuple[str, ...] = (), *,
        ignore: tuple[str, ...] = ()) -> pd.Series:
    """One text key per row from the given columns and the options of the given kinds (less ``ignore``, as in
    ``options_key``)."""
    parts = [text(rows, c) for c in columns] + ([options_key(rows, *option_kinds, ignore=ignore)]
                                                if option_kinds else [])
    joined = pd.Series("", index=rows.index, dtype=object)
    for part in parts:
        joined = joined + _SEP + part
    return joined


def model_key(rows: pd.DataFrame) -> pd.Series:
    """Rows with equal model keys score the same images the same way."""
    return key(rows, MODEL_IDENTITY, MODEL_OPTION_KINDS)


def one_per_calibrator(rows: pd.DataFrame) -> pd.DataFrame:
    """The first of the rows that differ only in the calibrator: AUROC and the gradient statistics do not depend on
    it (it maps scores monotonically after the attack), so comparing every calibrator repeats one comparison."""
    cell = key(rows, (*MODEL_IDENTITY, *PERTURBATION, *CERTIFICATE), (*MODEL_OPTION_KINDS, "surrogate", "attack"))
    return rows[~cell.duplicated()]


def with_noise_control(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows with ``noise_adv_auroc`` (and its interval) beside every attack row: the ``noise`` control's value for the
    same model and eps, the calibrator, the surrogate and how the attack takes gradients aside
    (``CONTROL_IDENTITY``); empty when that control was not run."""
    control_key = key(rows, CONTROL_IDENTITY, MODEL_OPTION_KINDS) + _SEP + text(rows, "eps")
    controls = rows.assign(_key=control_key)[attack_names(rows) == NOISE_CONTROL].drop_duplicates("_key")
    controls = controls.set_index("_key")
    attacked = is_attack(rows)
    out = rows.copy()
    for column in NOISE_COLUMNS:
        source = controls[column] if column in controls else pd.Series(dtype=object)
        out[f"noise_{column}"] = control_key.map(source).where(attacked)
    return out


def describe(row: pd.Series, columns: tuple[str, ...] | list[str]) -> str:
    """``column=value`` for the row's non-empty values, and its options when there are any."""
    parts = [f"{c}={row[c]}" for c in columns if c in row and not _empty(row[c])]
    if "options" in row and not _empty(row["options"]) and str(row["options"]) != "{}":
        parts.append(f"options={row['options']}")
    return " ".join(parts)


def _empty(value: object) -> bool:
    return value is None or (not isinstance(value, str) and pd.isna(value)) or str(value) == ""
