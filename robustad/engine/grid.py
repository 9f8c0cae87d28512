"""Cells of the benchmark grid (PROTOCOL.md section 1) and their grouping by shared prefix (section 8)."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, fields

from robustad.components import parse_spec

NO_ATTACK = "none"


@dataclass(frozen=True)
class Cell:
    """One leaderboard row's key. ``options`` is canonical JSON of the plugin options the cell uses."""

    dataset: str
    category: str
    shots: str
    seed: int
    backbone: str
    weights: str
    resolution: int
    detector: str
    surrogate: str
    attack: str
    eps: str
    calibrator: str
    calib_fraction: float
    options: str = "{}"

    @property
    def key(self) -> str:
        """A stable hash of every field: the leaderboard's resume key."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def split_prefix(self) -> tuple:
        """Cells with equal split prefixes share the reference, calib and eval lists."""
        return (self.dataset, self.category, self.shots, self.seed, self.calib_fraction)

    @property
    def model_prefix(self) -> tuple:
        """Cells with equal model prefixes share features, memory bank and clean scores."""
        return (*self.split_prefix, self.backbone, self.weights, self.resolution, self.detector,
                self.options_of("dataset", "backbone", "detector"))

    @property
    def attack_prefix(self) -> tuple:
        """Cells with equal attack prefixes share adversarial images and their scores."""
        return (*self.model_prefix, self.surrogate, self.attack, self.eps, self.options_of("surrogate", "attack"))

    def options_of(self, *kinds: str) -> str:
        """The options of the components of these kinds, as canonical JSON."""
        chosen = {k: v for k, v in json.loads(self.options).items() if k.split(".")[0] in kinds}
        return json.dumps(chosen, sort_keys=True)


CELL_FIELDS = tuple(f.name for f in fields(Cell))


def expand(
    *,
    datasets: dict[str, list[str]],
    shots: list[str],
    seeds: list[int],
    backbones: list[str],
    weights: str,
    resolutions: list[int],
    detectors: list[str],
    surrogates: list[str],
    attacks: list[str],
    eps: list[str],
    calibrators: list[str],
    calib_fraction: float,
    options: dict[tuple[str, str], dict],
) -> list[Cell]:
    """The cross product, in an order where cells sharing a prefix are adjacent.

    ``datasets`` maps each dataset to its categories. ``--attack none`` gives clean-only cells
    that take no surrogate or eps. ``options`` maps (kind, name) to that component's options; options of
    ``torchattacks`` apply to every ``torchattacks:NAME`` attack.
    """
    threats = []
    for attack in attacks:
        if attack == NO_ATTACK:
            threats.append((NO_ATTACK, NO_ATTACK, ""))
        else:
            threats.extend((surrogate, attack, e) for surrogate in surrogates for e in eps)
    cells = []
    for dataset, categories in datasets.items():
        for category, k, seed, backbone, resolution, detector in itertools.product(
            categories, shots, seeds, backbones, resolutions, detectors
        ):
            for (surrogate, attack, e), calibrator in itertools.product(threats, calibrators):
                chosen = {("dataset", dataset), ("backbone", backbone), ("detector", detector),
                          ("surrogate", surrogate), ("attack", attack), ("attack", parse_spec(attack)[0]),
                          ("calibrator", calibrator)}
                used = {f"{kind}.{name}": opts for (kind, name), opts in sorted(options.items())
                        if (kind, name) in chosen}
                cells.append(Cell(dataset, category, k, seed, backbone, weights, resolution, detector,
                                  surrogate, attack, e, calibrator, calib_fraction,
                                  json.dumps(used, sort_keys=True)))
    return cells


def group_by_model_prefix(cells: list[Cell]) -> list[list[Cell]]:
    """Consecutive runs of cells that share a model prefix: the unit of work of an executor."""
    groups: dict[tuple, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.model_prefix, []).append(cell)
    return list(groups.values())
