"""The grid of cells (docs/protocol.md section 1) and its grouping by shared prefix (section 8)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass

from robustad.components import parse_spec
from robustad.records import CERT_ALPHA, NO_ATTACK, NO_DEFENSE, NO_SURROGATE, Cell


@dataclass(frozen=True)
class Adaptive:
    """How gradient attacks meet one defense: the BPDA rule and the EOT draws a cell records."""

    bpda: str = "none"
    eot_samples: int = 1
    certified: bool = False  # its median scores can be certified (``certified_sigma``)


NO_DEFENSE_ADAPTIVE = {"none": Adaptive()}


@dataclass(frozen=True)
class Threat:
    """What the grid needs to know of an attack spec: whether it takes a surrogate, and every spec it combines
    (members of members included, each once, in the order they must be computed)."""

    needs_surrogate: bool = True
    members: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()  # flag specs the attack or a member evades (``flag_aware``)


Resolve = Callable[[str, str], dict]  # (kind, spec) -> that component's options, defaults included


def expand(
    *,
    datasets: dict[str, dict[str, tuple[str, str]]],
    shots: list[str],
    seeds: list[int],
    backbones: list[str],
    weights: str,
    resolutions: list[int],
    detectors: list[str],
    surrogates: list[str],
    attacks: dict[str, Threat],
    eps: list[str],
    calibrators: list[str],
    calib_fraction: float,
    precision: str,
    round_8bit: bool,
    resolve: Resolve,
    defenses: dict[str, Adaptive] = NO_DEFENSE_ADAPTIVE,
    chunk: int = 1,
    flags: tuple[str, ...] = ("entropy",),
    flag_fpr: float = 0.05,
    norm: str = "linf",
    cert_radii: tuple[str, ...] = (),
    cert_alpha: float = CERT_ALPHA,
    clean_candidate: bool = True,
) -> list[Cell]:
    """The cross product, in an order where cells sharing a prefix are adjacent.

    ``datasets`` maps each dataset to its categories and their data digests (by names and sizes, by content).
    A cell's ``attack`` is the attack plugin's name and its options sit under ``attack.<name>``, however the spec
    was written (``pgd:20`` is ``pgd`` with ``steps`` 20); a combined attack's members keep their specs.
    ``--attack none`` gives clean-only cells, and an attack that needs no surrogate (the noise control) one cell
    per eps, both with surrogate ``none``. Each cell's options are the resolved options of every component it
    uses, a combined attack's members included, so that equal experiments share a key and a changed default
    changes it. Each flag is a cell of its own (the rows' flag columns are in long format); the cells of one
    attack that differ only in their flag share every stage's work. A flag without options (``entropy``) adds
    nothing to the options, so the cells of today's default keep the keys they had before flags were a kind.
    ``norm`` is the attacked cells' ball; clean-only cells keep ``linf`` (nothing is attacked), and so their keys.
    Each radius of ``cert_radii`` adds, for each certified defense, a clean-only cell holding the certificate at
    that radius (``cert_radius``, ``cert_alpha``), whatever the attacks. ``clean_candidate``: attacked cells keep
    the clean image where an attack does not move its score (clean-only cells record False: nothing is attacked).
    """
    threats = []
    for attack, threat in attacks.items():
        if attack == NO_ATTACK:
            threats.append((NO_SURROGATE, NO_ATTACK, ""))
        elif not threat.needs_surrogate:
            threats.extend((NO_SURROGATE, attack, e) for e in eps)
        else:
            threats.extend((surrogate, attack, e) for surrogate in surrogates for e in eps)
    cells = []
    for dataset, categories in datasets.items():
        for (category, data), k, seed, backbone, resolution, detector, defense in itertools.product(
            categories.items(), shots, seeds, backbones, resolutions, detectors, defenses
        ):
            certifying = [(NO_SURROGATE, NO_ATTACK, "", radius) for radius in cert_radii
                          if defenses[defense].certified]
            plain = [(*threat, "") for threat in threats]
            for (surrogate, attack, e, radius), calibrator, flag in itertools.product(plain + certifying,
                                                                                       calibrators, flags):
                used = [("dataset", dataset), ("backbone", backbone), ("detector", detector),
                        ("calibrator", calibrator)]
                if surrogate != NO_SURROGATE:
                    used.append(("surrogate", surrogate))
                resolved = {f"{kind}.{spec}": resolve(kind, spec) for kind, spec in used}
                flag_options = {f"flag.{spec}": resolve("flag", spec)
                                for spec in (flag, *(attacks[attack].flags if attack != NO_ATTACK else ()))}
                resolved.update({key: value for key, value in flag_options.items() if value})  # keys stay as before
                if defense != NO_DEFENSE:
                    resolved[f"defense.{parse_spec(defense)[0]}"] = resolve("defense", defense)
                if attack != NO_ATTACK:
                    resolved.update({f"attack.{spec}": resolve("attack", spec) for spec in attacks[attack].members})
                    resolved[f"attack.{parse_spec(attack)[0]}"] = resolve("attack", attack)
                options = json.dumps(resolved, sort_keys=True)
                adaptive = defenses[defense] if surrogate != NO_SURROGATE else Adaptive()
                cells.append(Cell(dataset, category, k, seed, backbone, weights, resolution, detector, surrogate,
                                  parse_spec(attack)[0], e, calibrator, calib_fraction, precision,
                                  round_8bit and attack != NO_ATTACK, options, *data,
                                  defense=parse_spec(defense)[0], bpda=adaptive.bpda,
                                  eot_samples=adaptive.eot_samples, chunk=chunk, flag=flag,
                                  flag_fpr=flag_fpr, norm=norm if attack != NO_ATTACK else "linf",
                                  cert_radius=radius, cert_alpha=cert_alpha if radius else CERT_ALPHA,
                                  clean_candidate=clean_candidate and attack != NO_ATTACK))
    return cells


def group_by_model_prefix(cells: list[Cell]) -> list[list[Cell]]:
    """Cells that share a model prefix, in first-seen order: the unit of work of an executor."""
    groups: dict[tuple, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.model_prefix, []).append(cell)
    return list(groups.values())


def group_by_threat_prefix(cells: list[Cell]) -> list[list[Cell]]:
    """Attacked cells that are computed together, batch by batch, in first-seen order."""
    groups: dict[tuple, list[Cell]] = {}
    for cell in cells:
        if cell.attack != NO_ATTACK:
            groups.setdefault(cell.threat_prefix, []).append(cell)
    return list(groups.values())
