"""Turn the CLI's comma lists into validated cells, failing early with one clear line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from robustad.components import KINDS, parse_spec
from robustad.errors import RobustadError
from robustad.engine.grid import NO_ATTACK, Cell, expand
from robustad.plugins import PluginRegistry
from robustad.engine.splits import parse_shots
from robustad.engine.runner import create
from robustad.kit.threat import parse_eps


@dataclass(frozen=True)
class BenchRequest:
    """The ``robustad bench`` options as typed by the user."""

    datasets: str
    data_root: Path | None
    categories: str
    shots: str
    seeds: str
    backbones: str
    weights: str
    resolutions: str
    detectors: str
    surrogates: str
    attacks: str
    eps: str
    calibrators: str
    calib_fraction: float
    options: list[str]


def split_list(text: str, what: str) -> list[str]:
    """``"a, b"`` -> ``["a", "b"]``; an empty list is an error naming the option."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise RobustadError(f"--{what} is empty; give at least one value")
    return items


def _integers(text: str, what: str, minimum: int) -> list[int]:
    values = []
    for item in split_list(text, what):
        try:
            value = int(item)
        except ValueError:
            raise RobustadError(f"--{what} {item!r}: expected an integer") from None
        if value < minimum:
            raise RobustadError(f"--{what} {item!r}: expected an integer >= {minimum}")
        values.append(value)
    return values


def parse_options(texts: list[str], registry: PluginRegistry) -> dict[tuple[str, str], dict]:
    """``kind.name.key=value`` strings -> {(kind, name): {key: typed value}}."""
    options: dict[tuple[str, str], dict] = {}
    for text in texts:
        target, sep, value = text.partition("=")
        kind, _, rest = target.partition(".")
        name, _, key = rest.rpartition(".")
        if not sep or not kind or not name or not key:
            raise RobustadError(f"--opt {text!r}: expected kind.name.key=value, e.g. attack.pgd.steps=20")
        if kind not in KINDS:
            raise RobustadError(f"--opt {text!r}: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        component = registry.get(kind, parse_spec(name)[0])
        options.setdefault((kind, name), {})[key] = component.parse_option(key, value)
    return options


def build_cells(request: BenchRequest, registry: PluginRegistry) -> list[Cell]:
    """Validate every name and value, then expand the cross product."""
    if not 0 < request.calib_fraction < 1:
        raise RobustadError(f"--calib-fraction {request.calib_fraction}: expected a number in (0, 1)")
    shots = split_list(request.shots, "shots")
    for k in shots:
        parse_shots(k)
    attacks = split_list(request.attacks, "attack")
    for kind, names in (("backbone", request.backbones), ("detector", request.detectors),
                        ("calibrator", request.calibrators)):
        for name in split_list(names, kind if kind != "calibrator" else "calib"):
            registry.get(kind, name)
    for spec in attacks:
        if spec != NO_ATTACK:
            name, argument = parse_spec(spec)
            registry.get("attack", name).spec_options(argument)
    surrogates = split_list(request.surrogates, "surrogate")
    eps = split_list(request.eps, "eps")
    if any(a != NO_ATTACK for a in attacks):
        for name in surrogates:
            registry.get("surrogate", name)
        for value in eps:
            parse_eps(value)
    datasets = {}
    for name in split_list(request.datasets, "dataset"):
        dataset = registry.get("dataset", name).create()
        present = dataset.categories(request.data_root)
        wanted = split_list(request.categories, "category")
        if wanted == ["all"]:
            wanted = present
        unknown = [c for c in wanted if c not in present]
        if unknown:
            raise RobustadError(f"category {unknown[0]!r} not found for dataset {name!r}; "
                                f"found: {', '.join(present) or 'none'}")
        datasets[name] = wanted
    options = parse_options(request.options, registry)
    in_use = {
        "dataset": set(datasets), "backbone": set(split_list(request.backbones, "backbone")),
        "detector": set(split_list(request.detectors, "detector")), "surrogate": set(surrogates),
        "attack": set(attacks) | {parse_spec(a)[0] for a in attacks},
        "calibrator": set(split_list(request.calibrators, "calib")),
    }
    for kind, name in options:
        if name not in in_use.get(kind, set()):
            raise RobustadError(f"--opt names {kind} {name!r}, which this run does not use; "
                                f"used: {', '.join(sorted(in_use.get(kind, ()))) or 'none'}")
    cells = expand(
        datasets=datasets, shots=shots, seeds=_integers(request.seeds, "seeds", 0),
        backbones=split_list(request.backbones, "backbone"), weights=request.weights,
        resolutions=_integers(request.resolutions, "resolution", 1),
        detectors=split_list(request.detectors, "detector"), surrogates=surrogates, attacks=attacks, eps=eps,
        calibrators=split_list(request.calibrators, "calib"), calib_fraction=request.calib_fraction,
        options=options,
    )
    _check_cheap_components(cells, registry)
    return cells


def _check_cheap_components(cells: list[Cell], registry: PluginRegistry) -> None:
    """Build each attack and calibrator once, so that a bad option fails now rather than mid-run."""
    seen = set()
    for cell in cells:
        for kind, spec in (("attack", cell.attack), ("calibrator", cell.calibrator)):
            if spec != NO_ATTACK or kind == "calibrator":
                key = (kind, spec, cell.options_of(kind))
                if key not in seen:
                    seen.add(key)
                    create(registry, kind, spec, cell)
