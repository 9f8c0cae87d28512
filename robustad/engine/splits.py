"""The data splits of docs/protocol.md section 2: few-shot reference set, and the stratified calib/eval split."""

from __future__ import annotations

import numbers
from collections import Counter

from robustad.components import Component
from robustad.errors import RobustadError
from robustad.kit.layouts import sorted_by_path
from robustad.records import CategoryData, Sample, Split

DEFAULT_CALIB_FRACTION = 0.3
MAX_SEED = 2**32 - 1  # the test split draws from numpy's legacy Mersenne Twister, seeded by 32 bits


def parse_shots(text: str) -> int | None:
    """``"all"`` -> None (every training image), otherwise a whole number k >= 0 (0: zero-shot, no reference)."""
    cleaned = str(text).strip().lower()
    if cleaned == "all":
        return None
    try:
        shots = int(cleaned)
    except ValueError:
        raise RobustadError(f"shots {text!r}: expected a whole number >= 0 or 'all'") from None
    if shots < 0:
        raise RobustadError(f"shots {text!r}: expected a whole number >= 0 (0: zero-shot) or 'all'")
    return shots


def require_reference(shots: int | None, detector: Component) -> None:
    """A one-line error when a cell is zero-shot (k = 0) and its detector cannot score without reference images
    (it does not declare ``zero_shot = True``)."""
    if shots == 0 and getattr(detector.cls, "zero_shot", False) is not True:
        raise RobustadError(f"shots 0: detector {detector.name!r} needs k >= 1 reference images (zero-shot "
                            "detectors declare zero_shot = True, e.g. winclip)")


def canonical_shots(text: str) -> str:
    """The one spelling of a shots value (``"01"`` -> ``"1"``, ``"ALL"`` -> ``"all"``)."""
    shots = parse_shots(text)
    return "all" if shots is None else str(shots)


def reference_set(train: list[Sample], shots: int | None, seed: int) -> list[Sample]:
    """``sorted(train)[seed*k : (seed+1)*k]`` (the AnomalyDINO rule; empty for k = 0); every image when ``shots``
    is None."""
    _check_seed(seed)
    ordered = sorted_by_path(train)
    if shots is None:
        return ordered
    if shots < 0:
        raise RobustadError(f"shots {shots}: expected a whole number >= 0 or 'all'")
    start, stop = seed * shots, (seed + 1) * shots
    if stop > len(ordered):
        raise RobustadError(f"k={shots} with seed {seed} needs normal training images {start}..{stop - 1} "
                            f"but only {len(ordered)} exist")
    return ordered[start:stop]


def split_test(test: list[Sample], seed: int,
               calib_fraction: float = DEFAULT_CALIB_FRACTION) -> tuple[list[Sample], list[Sample]]:
    """Split the test set, stratified by label, into ``(calib, eval)``, each sorted by path.

    sklearn's ``train_test_split`` with ``random_state=seed`` draws from numpy's legacy Mersenne Twister,
    so the same seed gives the same lists on every machine; calib gets ``floor(calib_fraction * n)`` images.
    """
    from sklearn.model_selection import train_test_split

    _check_seed(seed)
    if not 0.0 < calib_fraction < 1.0:
        raise RobustadError(f"calib fraction {calib_fraction}: expected a number strictly between 0 and 1")
    ordered = sorted_by_path(test)
    labels = [s.label for s in ordered]
    counts = f"{labels.count(0)} normal and {labels.count(1)} anomalous test images"
    try:
        calib, evaluation = train_test_split(ordered, train_size=calib_fraction, stratify=labels,
                                             random_state=seed)
    except ValueError:
        calib, evaluation = [], []  # too few images of a class or in total; reported below
    for name, part in (("calib", calib), ("eval", evaluation)):
        found = Counter(s.label for s in part)
        if found[0] == 0 or found[1] == 0:
            raise RobustadError(f"seed {seed}, calib fraction {calib_fraction}: {counts} leave {name} without "
                                f"both normal and anomalous images")
    return sorted_by_path(calib), sorted_by_path(evaluation)


def limit_eval(evaluation: list[Sample], limit: int, seed: int) -> list[Sample]:
    """At most ``limit`` of the eval images (0: all), drawn as ``split_test`` draws: stratified by label with
    ``random_state=seed``, sorted by path; a smoke run's eval images are a subset of the full run's."""
    if not limit or limit >= len(evaluation):
        return evaluation
    import numpy as np
    from sklearn.model_selection import train_test_split

    labels = [s.label for s in evaluation]
    if limit < 2:
        raise RobustadError(f"limit {limit}: an eval set needs both normal and anomalous images; expected >= 2")
    try:
        kept, _ = train_test_split(evaluation, train_size=limit, stratify=labels, random_state=seed)
    except ValueError:  # fewer left out than there are labels: leave out a seeded draw of them instead
        left_out = set(np.random.RandomState(seed).permutation(len(evaluation))[:len(evaluation) - limit])
        kept = [sample for index, sample in enumerate(evaluation) if index not in left_out]
    return sorted_by_path(kept)


def split_sizes(data: CategoryData, shots: int | None, seed: int, calib_fraction: float = DEFAULT_CALIB_FRACTION,
                limit: int = 0) -> tuple[int, int, int]:
    """How many reference, calib and eval images ``make_split`` gives, without drawing them (nor importing
    sklearn): calib is ``floor(calib_fraction * n)`` as in ``train_test_split``, eval the rest, at most ``limit``."""
    try:
        reference = reference_set(data.train, shots, seed)
    except RobustadError as exc:
        raise RobustadError(f"{data.dataset}/{data.category}: {exc}") from None
    calib = int(calib_fraction * len(data.test))
    evaluation = len(data.test) - calib
    return len(reference), calib, min(evaluation, limit) if limit else evaluation


def make_split(data: CategoryData, shots: int | None, seed: int,
               calib_fraction: float = DEFAULT_CALIB_FRACTION, limit: int = 0) -> Split:
    """The reference, calib, eval and full test lists one cell of ``data`` sees (``limit``: ``limit_eval``)."""
    try:
        reference = reference_set(data.train, shots, seed)
        calib, evaluation = split_test(data.test, seed, calib_fraction)
        evaluation = limit_eval(evaluation, limit, seed)
    except RobustadError as exc:
        raise RobustadError(f"{data.dataset}/{data.category}: {exc}") from None
    return Split(reference=reference, calib=calib, eval=evaluation, test=sorted_by_path(data.test))


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        raise RobustadError(f"seed {seed!r}: expected a whole number between 0 and {MAX_SEED} (2**32 - 1)")
