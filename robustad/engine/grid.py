"""The grid of cells (docs/protocol.md section 1) and its grouping by shared prefix (section 8)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robustad.components import parse_spec
from robustad.engine.adaptive import Adaptive
from robustad.records import NO_ATTACK, NO_DEFENSE, NO_SURROGATE, Cell


@dataclass(frozen=True)
class Threat:
    """What the grid needs to know of an attack spec: whether it takes a surrogate, and every spec it combines
    (members of members included, each once, in the order they must be computed)."""

    needs_surrogate: bool = True
    members: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()  # flag specs the attack or a member evades (``flag_aware``)
    posteriors: tuple[str, ...] = ()  # calibrator specs it evades a flag through, whose options --opt changed
    settings: tuple[tuple[str, Any], ...] = ()  # what ``describe`` said at the first eps: steps, queries, ...

    def passes(self, eot: int = 1) -> tuple[int, int]:
        """Model passes (forward, backward) per eval image that its own settings declare: ``steps`` x
        ``restarts`` x ``eot`` gradient steps and one score per restart, or ``queries`` x ``restarts`` forward
        passes; a combined attack's members are counted as attacks of their own."""
        declared = dict(self.settings)
        restarts = _count(declared.get("restarts"), 1)
        if declared.get("queries") is not None:
            return _count(declared["queries"], 0) * restarts, 0
        if self.members:
            return 0, 0
        steps = _count(declared.get("steps"), 1) * restarts * eot
        return steps + restarts, steps


def _count(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


Resolve = Callable[[str, str], dict]  # (kind, spec) -> that component's options, defaults included


def expand(
    *,
    datasets: dict[str, dict[str, tuple[str, str]]],
    shots: list[str],
    seeds: list[int],
    backbones: list[str],
    resolutions: list[int],
    detectors: list[str],
    surrogates: list[str],
    attacks: dict[str, Threat],
    eps: list[str],
    calibrators: list[str],
    resolve: Resolve,
    defenses: dict[str, Adaptive] | None = None,
    flags: tuple[str, ...] = ("entropy",),
    cert_radii: tuple[str, ...] = (),
    fixed: dict[str, Any] | None = None,
) -> list[Cell]:
    """The cross product, in an order where cells sharing a prefix are adjacent.

    ``datasets`` maps each dataset to its categories and their data digests (by names and sizes, by content);
    ``fixed`` holds the cell fields every cell of the grid shares (``weights``, ``precision``, ``chunk``, ...),
    passed to ``Cell`` by name. ``round_8bit`` and ``norm`` apply to attacked cells only, ``cert_alpha`` to cells
    holding a certificate; other cells keep those fields' defaults, and so their keys.
    A cell's ``attack`` is the attack plugin's name and its options sit under ``attack.<name>``, however the spec
    was written (``pgd:20`` is ``pgd`` with ``steps`` 20); a combined attack's members keep their specs.
    ``--attack none`` gives clean-only cells, and an attack that needs no surrogate (the noise control) one cell
    per eps, both with surrogate ``none``. Each cell's options are the resolved options of every component it
    uses, a combined attack's members included, so that equal experiments share a key and a changed default
    changes it. Each flag is a cell of its own (the rows' flag columns are in long format); the cells of one
    attack that differ only in their flag share every stage's work. A flag without options (``entropy``) adds
    nothing to the options, so the cells of today's default keep the keys they had before flags were a kind.
    Each radius of ``cert_radii`` adds, for each certified defense, a clean-only cell holding the certificate at
    that radius (``cert_radius``, ``cert_alpha``), whatever the attacks. ``keep_clean``: attacked cells keep
    the clean image where an attack does not move its score (clean-only cells record False: nothing is attacked).
    ``radius`` applies to attacked cells with a surrogate only (the noise control and clean-only cells keep False).
    """
    defenses = defenses or {NO_DEFENSE: Adaptive()}
    fixed = dict(fixed or {})
    attacked_only = {name: fixed.pop(name) for name in ("round_8bit", "norm", "cert_alpha", "keep_clean", "radius")
                     if name in fixed}
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
                    resolved.update({f"calibrator.{spec}": resolve("calibrator", spec)
                                     for spec in attacks[attack].posteriors})
                    resolved[f"attack.{parse_spec(attack)[0]}"] = resolve("attack", attack)
                adaptive = defenses[defense] if surrogate != NO_SURROGATE else Adaptive()
                attacked = {name: value for name, value in attacked_only.items() if _applies(name, radius, attack,
                                                                                           surrogate)}
                if attack == NO_ATTACK:
                    attacked["keep_clean"] = False  # nothing is attacked, so no clean image is kept
                data_id, data_sha = data
                cells.append(Cell(
                    dataset=dataset, category=category, shots=k, seed=seed, backbone=backbone,
                    resolution=resolution, detector=detector, surrogate=surrogate, attack=parse_spec(attack)[0],
                    eps=e, calibrator=calibrator, options=json.dumps(resolved, sort_keys=True), data_id=data_id,
                    data_sha=data_sha, defense=parse_spec(defense)[0], bpda=adaptive.bpda,
                    eot_samples=adaptive.eot_samples, flag=flag, cert_radius=radius, **fixed, **attacked))
    return cells


def _applies(name: str, cert_radius: str, attack: str, surrogate: str) -> bool:
    """Whether a field of ``fixed`` that not every cell takes applies to this cell: ``cert_alpha`` to a cell holding
    a certificate, ``radius`` to an attacked cell with a surrogate (the search ascends its gradient), the others to
    attacked cells."""
    if name == "cert_alpha":
        return bool(cert_radius)
    if name == "radius":
        return surrogate != NO_SURROGATE
    return attack != NO_ATTACK


def describe(cell: Cell, key: str | None = None) -> str:
    """A cell in words, for progress lines, failures and dry runs (``key``: its key, when known already)."""
    threat = "clean" if not cell.eps else f"{cell.attack} {cell.eps} via {cell.surrogate}"
    return (f"{cell.dataset}/{cell.category} k={cell.shots} seed={cell.seed} {cell.backbone}@{cell.resolution} "
            f"{threat} {cell.calibrator} (cell {key or cell.key})")


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
