"""Turn the CLI's comma lists into validated, canonical cells: the one place where settings become a grid.

Everything that can be checked before computing is checked here, so a bad name, value or option is one line
before any work starts: components exist, options parse to their types (and pass the class's ``check_options``),
resolutions reach the backbones' patch sizes, attacks describe themselves with known keys, datasets and categories
are present and every cell's split can be made, and equal experiments are spelled alike (eps, shots, weights, data).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

from robustad.components import KINDS, Component, parse_spec
from robustad.contracts import ATTACK_SETTINGS
from robustad.engine.grid import Threat, expand
from robustad.engine.guard import blame, create
from robustad.engine.identity import data_id
from robustad.engine.settings import PRECISIONS
from robustad.engine.splits import MAX_SEED, canonical_shots, make_split, parse_shots
from robustad.errors import RobustadError
from robustad.kit.threat import canonical_eps, parse_eps
from robustad.kit.weights import weights_identity
from robustad.plugins import PluginRegistry
from robustad.records import NO_ATTACK, NOISE_CONTROL, CategoryData, Cell

MAX_RESOLUTION = 4096
MAX_MEMBER_DEPTH = 4


@dataclass(frozen=True)
class BenchRequest:
    """The ``robustad bench`` grid options as typed by the user."""

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
    precision: str = "fp32"
    round_8bit: bool = False



def with_noise_control(attacks: str) -> str:
    """The ``--attack`` list with the noise control first, unless it is there already or nothing is attacked: every
    attack is read against random noise of the same size (docs/protocol.md section 4)."""
    specs = [spec.strip() for spec in attacks.split(",") if spec.strip()]
    if not specs or specs == [NO_ATTACK] or NOISE_CONTROL in specs:
        return attacks
    return ",".join([NOISE_CONTROL, *specs])


def split_list(text: str, what: str) -> list[str]:
    """``"a, b"`` -> ``["a", "b"]`` without repeats; an empty list is an error naming the option."""
    items = list(dict.fromkeys(item.strip() for item in text.split(",") if item.strip()))
    if not items:
        raise RobustadError(f"--{what} is empty; give at least one value")
    return items


def _integers(text: str, what: str, low: int, high: int | None = None) -> list[int]:
    values = []
    for item in split_list(text, what):
        try:
            value = int(item)
        except ValueError:
            raise RobustadError(f"--{what} {item!r}: expected an integer") from None
        if value < low or (high is not None and value > high):
            bounds = f">= {low}" if high is None else f"between {low} and {high}"
            raise RobustadError(f"--{what} {item!r}: expected an integer {bounds}")
        values.append(value)
    return list(dict.fromkeys(values))


def parse_options(texts: list[str], registry: PluginRegistry) -> dict[tuple[str, str], dict]:
    """``kind.spec.key=value`` strings -> {(kind, spec): {key: typed value}}."""
    options: dict[tuple[str, str], dict] = {}
    for text in texts:
        target, sep, value = text.partition("=")
        kind, _, rest = target.partition(".")
        spec, _, key = rest.rpartition(".")
        if not sep or not kind or not spec or not key:
            raise RobustadError(f"--opt {text!r}: expected kind.name.key=value, e.g. attack.pgd.steps=20")
        if kind not in KINDS:
            raise RobustadError(f"--opt {text!r}: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        component = registry.get(kind, parse_spec(spec)[0])
        options.setdefault((kind, spec), {})[key] = component.parse_option(key, value)
    return options


class _Resolver:
    """The options of a component spec: its defaults, then ``--opt`` for its name, then for the exact spec,
    then the spec's ``:argument``."""

    def __init__(self, registry: PluginRegistry, given: dict[tuple[str, str], dict]) -> None:
        self.registry = registry
        self.given = given

    def component(self, kind: str, spec: str) -> Component:
        return self.registry.get(kind, parse_spec(spec)[0])

    def __call__(self, kind: str, spec: str) -> dict:
        name, argument = parse_spec(spec)
        component = self.component(kind, spec)
        options: dict[str, Any] = {o.name: o.default for o in component.options}
        options.update(self.given.get((kind, name), {}))
        if spec != name:
            options.update(self.given.get((kind, spec), {}))
        options.update(component.spec_options(argument))
        return json.loads(json.dumps(options, default=str))  # what the cell records is what the cell gets

    def create(self, kind: str, spec: str, *args: Any) -> Any:
        """An instance with the resolved options; a constructor's complaint about them is one line."""
        return create(self.component(kind, spec), *args, **self(kind, spec))

    def check(self, kind: str, spec: str) -> None:
        """The resolved options of a component built only when its cells run, checked now by its class."""
        component = self.component(kind, spec)
        with blame(component):
            component.check_options(self(kind, spec))


def build_cells(request: BenchRequest, registry: PluginRegistry) -> list[Cell]:
    """Validate every name and value, then expand the cross product into canonical cells."""
    if not 0 < request.calib_fraction < 1:
        raise RobustadError(f"--calib-fraction {request.calib_fraction}: expected a number in (0, 1)")
    if request.precision not in PRECISIONS:
        raise RobustadError(f"--precision {request.precision}: expected one of {', '.join(PRECISIONS)}")
    given = parse_options(request.options, registry)
    resolve = _Resolver(registry, given)
    names = {
        "backbone": split_list(request.backbones, "backbone"),
        "detector": split_list(request.detectors, "detector"),
        "calibrator": split_list(request.calibrators, "calib"),
        "surrogate": split_list(request.surrogates, "surrogate"),
    }
    for kind in ("backbone", "detector"):
        for spec in names[kind]:
            resolve.check(kind, spec)
    for spec in names["calibrator"]:
        resolve.create("calibrator", spec)  # cheap: a bad option fails now rather than mid-run
    resolutions = _integers(request.resolutions, "resolution", 1, MAX_RESOLUTION)
    _check_patch_sizes(resolutions, names["backbone"], resolve)
    attack_specs = split_list(request.attacks, "attack")
    eps = list(dict.fromkeys(canonical_eps(value) for value in split_list(request.eps, "eps")))
    attacks = _threats(attack_specs, eps, resolve)
    if any(t.needs_surrogate for a, t in attacks.items() if a != NO_ATTACK):
        for spec in names["surrogate"]:
            resolve.create("surrogate", spec)  # cheap as well: fitted only when its cells run
    shots = list(dict.fromkeys(canonical_shots(k) for k in split_list(request.shots, "shots")))
    seeds = _integers(request.seeds, "seeds", 0, MAX_SEED)
    datasets = _datasets(request, resolve, shots, seeds)
    _check_options_used(given, datasets, names, attacks)
    return expand(
        datasets=datasets, shots=shots, seeds=seeds,
        backbones=names["backbone"], weights=weights_identity(request.weights), resolutions=resolutions,
        detectors=names["detector"], surrogates=names["surrogate"], attacks=attacks, eps=eps,
        calibrators=names["calibrator"], calib_fraction=float(request.calib_fraction),
        precision=request.precision, round_8bit=request.round_8bit, resolve=resolve,
    )


def _threats(specs: list[str], eps: list[str], resolve: _Resolver) -> dict[str, Threat]:
    """Each attack spec's Threat, building every attack once to check its options, its ``describe`` keys and its
    members before any work starts."""
    threats: dict[str, Threat] = {}
    for spec in specs:
        threats[spec] = Threat() if spec == NO_ATTACK else _threat(spec, eps, resolve, ())
    return threats


def _threat(spec: str, eps: list[str], resolve: _Resolver, parents: tuple[str, ...]) -> Threat:
    if spec == NO_ATTACK or spec in parents:
        raise RobustadError(f"attack {parents[-1]!r} cannot combine {spec!r}: expected attacks other than itself "
                            f"and {NO_ATTACK!r}")
    if len(parents) > MAX_MEMBER_DEPTH:
        raise RobustadError(f"attack {spec!r}: members nested deeper than {MAX_MEMBER_DEPTH} levels")
    attack = resolve.create("attack", spec)
    component = resolve.component("attack", spec)
    for value in eps:
        with blame(component):
            unknown = set(attack.describe(parse_eps(value))) - set(ATTACK_SETTINGS)
        if unknown:
            raise RobustadError(f"{component.label()}: describe() returned unknown keys {', '.join(sorted(unknown))}; "
                                f"expected keys from {', '.join(ATTACK_SETTINGS)}")
    with blame(component):
        listed = list(attack.members()) if callable(getattr(attack, "members", None)) else []
    members: list[str] = []
    for member in listed:
        for nested in (*_threat(member, eps, resolve, (*parents, spec)).members, member):
            if nested not in members:
                members.append(nested)
    return Threat(needs_surrogate=bool(getattr(attack, "needs_surrogate", True)), members=tuple(members))


def _check_patch_sizes(resolutions: list[int], backbones: list[str], resolve: _Resolver) -> None:
    """Every resolution at least the patch size of every backbone, read off its class (``patch_size``, where the
    class declares it as an integer) without building it."""
    for spec in backbones:
        patch = getattr(resolve.component("backbone", spec).cls, "patch_size", None)
        if isinstance(patch, int) and not isinstance(patch, bool):
            for resolution in resolutions:
                if resolution < patch:
                    raise RobustadError(f"--resolution {resolution}: below the patch size of backbone {spec!r}; "
                                        f"expected an integer >= {patch}")


def _datasets(request: BenchRequest, resolve: _Resolver, shots: list[str], seeds: list[int]
              ) -> dict[str, dict[str, str]]:
    """Each dataset's wanted categories with the digest of their images (read now: a missing category, image or
    mask is one line before any work starts), and every cell's split made once, so that too few training images for
    k and the seed, or too few test images to calibrate, fail now too."""
    found: dict[str, dict[str, str]] = {}
    wanted = split_list(request.categories, "category")
    for name in split_list(request.datasets, "dataset"):
        dataset, component = resolve.create("dataset", name), resolve.component("dataset", name)
        with blame(component):
            present = dataset.categories(request.data_root)
        chosen = present if wanted == ["all"] else wanted
        unknown = [c for c in chosen if c not in present]
        if unknown:
            raise RobustadError(f"category {unknown[0]!r} not found for dataset {name!r}; "
                                f"found: {', '.join(present) or 'none'}")
        found[name] = {}
        for category in chosen:
            with blame(component):
                data = dataset.load(request.data_root, category)
            _check_readable(data)
            for k, seed in product(shots, seeds):
                make_split(data, parse_shots(k), seed, request.calib_fraction)
            found[name][category] = data_id(data)
    return found


def _check_readable(data: CategoryData) -> None:
    """Every image and mask of a category readable by this process (most are opened only when their cells run)."""
    for sample in data.train + data.test:
        for path in (sample.path, sample.mask):
            if path is not None and not os.access(path, os.R_OK):
                raise RobustadError(f"{data.dataset}/{data.category}: cannot read {path} (permission denied)")


def _check_options_used(given: dict[tuple[str, str], dict], datasets: dict, names: dict[str, list[str]],
                        attacks: dict[str, Threat]) -> None:
    """An ``--opt`` for a component this run does not use is a mistake (a typo, or a forgotten name)."""
    attack_specs = {s for a, t in attacks.items() if a != NO_ATTACK for s in (a, *t.members)}
    in_use = {"dataset": set(datasets), **{kind: set(specs) for kind, specs in names.items()},
              "attack": attack_specs | {parse_spec(a)[0] for a in attack_specs}}
    if not any(t.needs_surrogate for a, t in attacks.items() if a != NO_ATTACK):
        in_use["surrogate"] = set()
    for kind, spec in given:
        if spec not in in_use.get(kind, set()):
            raise RobustadError(f"--opt names {kind} {spec!r}, which this run does not use; "
                                f"used: {', '.join(sorted(in_use.get(kind, ()))) or 'none'}")
