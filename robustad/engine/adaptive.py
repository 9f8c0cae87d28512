"""How gradient attacks meet a defense (docs/protocol.md section 4), decided when cells are built: the BPDA rule
through a non-differentiable defense and the EOT draws through a randomized one. Torch-free, so that a dry run
builds cells without it."""

from __future__ import annotations

from dataclasses import dataclass

from robustad.engine.guard import ComponentError
from robustad.engine.handles import Handle
from robustad.errors import RobustadError

EOT_DEFAULT = 16  # EOT draws per gradient step against a randomized defense unless --eot says otherwise


@dataclass(frozen=True)
class Adaptive:
    """How gradient attacks meet one defense: the BPDA rule and the EOT draws a cell records."""

    bpda: str = "none"
    eot_samples: int = 1
    certified: bool = False  # its median scores can be certified (``certified_sigma``)


def certified_sigma(handle: Handle) -> float | None:
    """The sigma a defense's median scores can be certified for: its ``certified_sigma`` where it is randomized,
    aggregates by the median and declares a number > 0; None otherwise."""
    sigma = handle.optional("certified_sigma")
    if sigma is None or not handle.instance.randomized or handle.optional("aggregate") != "median":
        return None
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 < sigma < float("inf"):
        raise ComponentError(f"{handle.component.label()} declares certified_sigma={sigma!r}; expected a number > 0")
    return float(sigma)


def reporting_draws(handle: Handle) -> int:
    """How many reporting draws estimate each reported score of a randomized defense: its ``report_samples``
    where it sets one, else at least as many as any estimate an attack selects on by default (its ``samples``
    behind ``score``, ``EOT_DEFAULT`` behind the EOT logit)."""
    declared = handle.optional("report_samples")
    if declared:
        if isinstance(declared, bool) or not isinstance(declared, int) or declared < 1:
            raise ComponentError(f"{handle.component.label()} declares report_samples={declared!r}; "
                                 "expected an integer >= 1")
        return declared
    return max(int(handle.optional("samples")), EOT_DEFAULT)


def check_reach(handle: Handle, resolutions: list[int]) -> None:
    """A defense that reads ``reach`` pixels around each pixel (a filter's half window) needs images wider than
    that (reflect padding): refused before any work, at every resolution of the grid, rather than failing in
    the first cell."""
    reach = handle.optional("reach")
    label = handle.component.label()
    if isinstance(reach, bool) or not isinstance(reach, int) or reach < 0:
        raise ComponentError(f"{label} declares reach={reach!r}; expected an integer >= 0 (pixels)")
    for resolution in resolutions:
        if reach >= resolution:
            raise RobustadError(f"{label} reads {reach} px on each side of a pixel, as wide as the {resolution} px "
                                f"images of --resolution {resolution}; expected a smaller window")


def resolved_bpda(requested: str, differentiable: bool) -> str:
    """The BPDA rule a cell records: ``none`` for a differentiable defense (its own gradient), else the request
    (``auto`` is ``identity``)."""
    if differentiable:
        return "none"
    return "identity" if requested == "auto" else requested


def resolved_eot(requested: int | None, randomized: bool) -> int:
    """EOT draws per gradient step a cell records: 1 against a deterministic defense, else the request or
    ``EOT_DEFAULT``."""
    if not randomized:
        return 1
    return EOT_DEFAULT if requested is None else requested
