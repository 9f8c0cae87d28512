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

from robustad.api import Values
from robustad.components import KINDS, Component, parse_spec
from robustad.contracts import FLAG_READS
from robustad.engine.defended import BPDA_CHOICES, certified_sigma, resolved_bpda, resolved_eot
from robustad.engine.grid import Adaptive, Threat, expand
from robustad.engine.guard import blame
from robustad.engine.handles import Handle, check_settings
from robustad.engine.identity import data_id, data_sha
from robustad.engine.settings import MAX_CHUNK, PRECISIONS
from robustad.engine.splits import MAX_SEED, canonical_shots, make_split, parse_shots
from robustad.errors import RobustadError
from robustad.kit.threat import L2, LINF, MAX_L2_EPS, canonical_eps, check_norm, is_ball, parse_eps
from robustad.kit.weights import weights_identity
from robustad.plugins import PluginRegistry
from robustad.records import CERT_ALPHA, NO_ATTACK, NO_DEFENSE, NOISE_CONTROL, CategoryData, Cell
from robustad.results.leaderboard import check_one_line

MAX_RESOLUTION = 4096
MAX_MEMBER_DEPTH = 4
MAX_EOT = 1000




@dataclass(frozen=True)
class BenchRequest:
    """The ``robustad bench`` grid: each axis a comma list as typed on the command line, or a Python list.

    ``options`` holds ``kind.name.key=value`` strings (``--opt``) or a mapping ``{"kind.name.key": value}`` whose
    values are Python values (a list for a member list).
    """

    datasets: Values
    data_root: Path | None
    categories: Values
    shots: Values
    seeds: Values
    backbones: Values
    weights: str
    resolutions: Values
    detectors: Values
    surrogates: Values
    attacks: Values
    eps: Values
    calibrators: Values
    calib_fraction: float
    options: list[str] | dict[str, Any]
    precision: str = "fp32"
    round_8bit: bool = False
    defenses: Values = NO_DEFENSE
    bpda: str = "auto"
    eot: int | None = None
    chunk: int = 1
    flags: Values = "entropy"
    flag_fpr: float = 0.05
    norm: str = LINF
    cert_radii: Values = ""
    cert_alpha: float = CERT_ALPHA


def with_noise_control(attacks: Values, norm: str = LINF) -> list[str]:
    """The attack list with the noise control first, unless it is there already, nothing is attacked or ``norm``
    is no ball (a corruption's severity is no noise size): every attack is read against random noise of the same
    size (docs/protocol.md section 4)."""
    specs = _items(attacks)
    if not specs or specs == [NO_ATTACK] or NOISE_CONTROL in {parse_spec(spec)[0] for spec in specs} \
            or not is_ball(norm):
        return specs
    return [NOISE_CONTROL, *specs]


def split_list(values: Values, what: str) -> list[str]:
    """``"a, b"`` (or ``["a", "b"]``) -> ``["a", "b"]`` without repeats; an empty list, or a value holding a line
    break, is an error naming the option."""
    items = list(dict.fromkeys(_items(values)))
    if not items:
        raise RobustadError(f"--{what} is empty; give at least one value")
    for item in items:
        check_one_line(item, f"--{what}")
    return items


def _items(values: Values) -> list[str]:
    parts = values.split(",") if isinstance(values, str) else [str(v) for v in values] \
        if isinstance(values, (list, tuple)) else [str(values)]
    return [part.strip() for part in parts if part.strip()]


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


def parse_options(given: list[str] | dict[str, Any], registry: PluginRegistry) -> dict[tuple[str, str], dict]:
    """``kind.spec.key=value`` strings, or a ``{"kind.spec.key": value}`` mapping of Python values -> {(kind, spec):
    {key: typed value}}."""
    options: dict[tuple[str, str], dict] = {}
    if isinstance(given, dict):
        pairs = [(str(target), "=", value) for target, value in given.items()]
    else:
        pairs = [str(text).partition("=") for text in given]
    for target, sep, value in pairs:
        text = f"{target}{sep}{value}"
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
    then the spec's ``:argument``. An option the class lists in ``later_options`` (added after cells with it were
    recorded) is left out while at its default, so those cells keep their keys (as a cell field with ``since``)."""

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
        defaults = {o.name: o.default for o in component.options}
        for later in getattr(component.cls, "later_options", ()):
            if later in options and options[later] == defaults.get(later):
                del options[later]
        return json.loads(json.dumps(options, default=str))  # what the cell records is what the cell gets

    def create(self, kind: str, spec: str, *args: Any) -> Any:
        """An instance with the resolved options; a constructor's complaint about them is one line."""
        return self.handle(kind, spec, *args).instance

    def handle(self, kind: str, spec: str, *args: Any) -> Handle:
        """A guarded handle on an instance with the resolved options."""
        return Handle.create(self.component(kind, spec), *args, **self(kind, spec))

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
    norm = _norm(request)
    eps = list(dict.fromkeys(canonical_eps(value, norm) for value in split_list(request.eps, "eps")))
    attacks = _threats(attack_specs, eps, resolve, norm)
    if any(t.needs_surrogate for a, t in attacks.items() if a != NO_ATTACK):
        for spec in names["surrogate"]:
            resolve.create("surrogate", spec)  # cheap as well: fitted only when its cells run
    defenses = _defenses(request, resolve)
    cert_radii = _cert_radii(request, defenses)
    names["flag"] = _flags(request, resolve)
    names["defense"] = [n for spec in defenses if spec != NO_DEFENSE for n in (spec, parse_spec(spec)[0])]
    shots = list(dict.fromkeys(canonical_shots(k) for k in split_list(request.shots, "shots")))
    seeds = _integers(request.seeds, "seeds", 0, MAX_SEED)
    datasets = _datasets(request, resolve, shots, seeds)
    _check_options_used(given, datasets, names, attacks)
    cells = expand(
        datasets=datasets, shots=shots, seeds=seeds,
        backbones=names["backbone"], weights=weights_identity(request.weights), resolutions=resolutions,
        detectors=names["detector"], surrogates=names["surrogate"], attacks=attacks, eps=eps,
        calibrators=names["calibrator"], calib_fraction=float(request.calib_fraction),
        precision=request.precision, round_8bit=request.round_8bit, resolve=resolve, defenses=defenses,
        chunk=_chunk(request.chunk), flags=tuple(names["flag"]), flag_fpr=float(request.flag_fpr), norm=norm,
        cert_radii=cert_radii, cert_alpha=float(request.cert_alpha),
    )
    return list({cell.key: cell for cell in cells}.values())  # pgd and pgd:10 are one experiment


def _norm(request: BenchRequest) -> str:
    """``--norm`` checked; ``--round-8bit`` is refused under L2, where rounding each pixel to the grid can leave the
    ball (docs/choices.md)."""
    norm = check_norm(request.norm)
    if norm == L2 and request.round_8bit:
        raise RobustadError("--round-8bit with --norm l2: rounding to the 8-bit grid can leave the L2 ball; "
                            "expected --norm linf, or no --round-8bit")
    return norm


def _cert_radii(request: BenchRequest, defenses: dict[str, Adaptive]) -> tuple[str, ...]:
    """``--cert-radius`` as canonical L2 radii (none when empty), checked with ``--cert-alpha``; a radius needs a
    defense whose median scores can be certified (``certified_sigma``: ``smoothing``)."""
    alpha = request.cert_alpha
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise RobustadError(f"--cert-alpha {alpha!r}: expected a number in (0, 1), e.g. 0.001")
    if not _items(request.cert_radii):
        return ()
    radii = tuple(dict.fromkeys(_radius(value) for value in split_list(request.cert_radii, "cert-radius")))
    if not any(adaptive.certified for adaptive in defenses.values()):
        raise RobustadError(f"--cert-radius {','.join(radii)}: no defense of --defense {','.join(defenses)} can be "
                            "certified; expected a median-smoothing defense, e.g. --defense smoothing")
    return radii


def _radius(text: str) -> str:
    """One ``--cert-radius`` value as a canonical L2 radius."""
    try:
        return canonical_eps(text, L2)
    except RobustadError:
        raise RobustadError(f"--cert-radius {text!r}: expected an L2 radius in (0, {MAX_L2_EPS}], e.g. 0.5") from None


def _chunk(value: object) -> int:
    """``--chunk`` checked: images per model call, 1 to ``MAX_CHUNK``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CHUNK:
        raise RobustadError(f"--chunk {value!r}: expected an integer from 1 to {MAX_CHUNK}")
    return value


def _defenses(request: BenchRequest, resolve: _Resolver) -> dict[str, Adaptive]:
    """Each defense spec with how gradient attacks meet it: BPDA through a non-differentiable one, EOT draws
    through a randomized one (each built once now, so a bad option is one line before any work)."""
    if request.bpda not in BPDA_CHOICES:
        raise RobustadError(f"--bpda {request.bpda!r}: expected one of {', '.join(BPDA_CHOICES)}")
    if request.eot is not None and not 1 <= int(request.eot) <= MAX_EOT:
        raise RobustadError(f"--eot {request.eot!r}: expected an integer from 1 to {MAX_EOT}")
    found: dict[str, Adaptive] = {}
    for spec in split_list(request.defenses, "defense"):
        if spec == NO_DEFENSE:
            found[spec] = Adaptive()
            continue
        defense = resolve.handle("defense", spec)
        randomized = bool(defense.instance.randomized)
        found[spec] = Adaptive(bpda=resolved_bpda(request.bpda, bool(defense.instance.differentiable)),
                               eot_samples=resolved_eot(request.eot, randomized),
                               certified=certified_sigma(defense) is not None)
    return found


def _flags(request: BenchRequest, resolve: _Resolver) -> list[str]:
    """The flag specs, each built once (a bad name or option is one line now), and the false-flag rate."""
    fpr = request.flag_fpr
    if isinstance(fpr, bool) or not isinstance(fpr, (int, float)) or not 0 < fpr < 1:
        raise RobustadError(f"--flag-fpr {fpr!r}: expected a number in (0, 1), e.g. 0.05")
    specs = split_list(request.flags, "flag")
    for spec in specs:
        _flag(resolve, spec, "--flag")
    return specs


def _flag(resolve: _Resolver, spec: str, what: str) -> None:
    """A flag spec built once, with a ``reads`` the engine knows."""
    flag = resolve.handle("flag", spec)
    if flag.instance.reads not in FLAG_READS:
        raise RobustadError(f"{what} {spec!r}: {flag.component.label()} reads {flag.instance.reads!r}; expected "
                            f"one of {', '.join(FLAG_READS)}")


def _threats(specs: list[str], eps: list[str], resolve: _Resolver, norm: str = LINF) -> dict[str, Threat]:
    """Each attack spec's Threat, building every attack once to check its options, its norms, its ``describe``
    keys and its members before any work starts."""
    threats: dict[str, Threat] = {}
    for spec in specs:
        threats[spec] = Threat() if spec == NO_ATTACK else _threat(spec, eps, resolve, (), norm)
    return threats


def _threat(spec: str, eps: list[str], resolve: _Resolver, parents: tuple[str, ...], norm: str = LINF) -> Threat:
    if spec == NO_ATTACK or spec in parents:
        raise RobustadError(f"attack {parents[-1]!r} cannot combine {spec!r}: expected attacks other than itself "
                            f"and {NO_ATTACK!r}")
    if len(parents) > MAX_MEMBER_DEPTH:
        raise RobustadError(f"attack {spec!r}: members nested deeper than {MAX_MEMBER_DEPTH} levels")
    attack = resolve.handle("attack", spec)
    norms = attack.optional("norms")
    norms = (norms,) if isinstance(norms, str) else tuple(norms)
    if norm not in norms:
        raise RobustadError(f"attack {spec!r} does not support --norm {norm}: {attack.component.label()} declares "
                            f"norms {', '.join(norms)}; expected one that lists {norm!r}")
    for value in eps:
        check_settings(attack, attack.call("describe", parse_eps(value, norm)))
    members: list[str] = []
    flags: list[str] = []  # the flags it or a member evades
    for member in _member_specs(attack):
        threat = _threat(member, eps, resolve, (*parents, spec), norm)
        flags.extend(threat.flags)
        for nested in (*threat.members, member):
            if nested not in members:
                members.append(nested)
    names = [parse_spec(member)[0] for member in members]
    twice = [m for m in members if names.count(parse_spec(m)[0]) > 1]
    if twice:
        raise RobustadError(f"attack {spec!r}: members {', '.join(twice)} name one attack with two settings; "
                            "keep one")
    aware = attack.optional("flag_aware")
    if aware:
        _flag(resolve, aware, f"attack {spec!r} option flag_aware")
        resolve.create("calibrator", str(attack.optional("flag_posterior")))  # the posterior it evades through
        flags.append(aware)
    return Threat(needs_surrogate=bool(attack.optional("needs_surrogate")), members=tuple(members),
                  flags=tuple(dict.fromkeys(flags)))


def _member_specs(attack: Handle) -> list[str]:
    """A combined attack's members, checked to be attack specs on one line."""
    members = attack.optional("members") or ()
    if isinstance(members, str) or not all(isinstance(m, str) for m in members):
        raise RobustadError(f"{attack.component.label()}: members() returned {members!r}; expected a list of "
                            "attack specs")
    for member in members:
        check_one_line(member, f"{attack.component.label()}: member")
    return list(members)


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
              ) -> dict[str, dict[str, tuple[str, str]]]:
    """Each dataset's wanted categories with the digest of their images (read now: a missing category, image or
    mask is one line before any work starts), and every cell's split made once, so that too few training images for
    k and the seed, or too few test images to calibrate, fail now too."""
    found: dict[str, dict[str, str]] = {}
    wanted = split_list(request.categories, "category")
    for name in split_list(request.datasets, "dataset"):
        dataset = resolve.handle("dataset", name)
        present = dataset.call("categories", request.data_root)
        if isinstance(present, str) or not all(isinstance(c, str) for c in present):
            raise RobustadError(f"{dataset.component.label()}: categories() returned {present!r}; expected a list "
                                "of category names")
        for category in present:
            check_one_line(category, f"{dataset.component.label()}: category")
        chosen = present if wanted == ["all"] else wanted
        unknown = [c for c in chosen if c not in present]
        if unknown:
            raise RobustadError(f"category {unknown[0]!r} not found for dataset {name!r}; "
                                f"found: {', '.join(present) or 'none'}")
        found[name] = {}
        for category in chosen:
            data = dataset.call("load", request.data_root, category)
            _check_readable(data)
            for k, seed in product(shots, seeds):
                make_split(data, parse_shots(k), seed, request.calib_fraction)
            found[name][category] = _digests(data)
    return found


def _digests(data: CategoryData) -> tuple[str, str]:
    """The data's identity by names and sizes (the key rows had before content counted) and by content."""
    return data_id(data), data_sha(data)


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
    flag_specs = set(names["flag"]) | {f for a, t in attacks.items() if a != NO_ATTACK for f in t.flags}
    names = {**names, "flag": sorted(flag_specs | {parse_spec(f)[0] for f in flag_specs})}
    in_use = {"dataset": set(datasets), **{kind: set(specs) for kind, specs in names.items()},
              "attack": attack_specs | {parse_spec(a)[0] for a in attack_specs}}
    if not any(t.needs_surrogate for a, t in attacks.items() if a != NO_ATTACK):
        in_use["surrogate"] = set()
    for kind, spec in given:
        if spec not in in_use.get(kind, set()):
            raise RobustadError(f"--opt names {kind} {spec!r}, which this run does not use; "
                                f"used: {', '.join(sorted(in_use.get(kind, ()))) or 'none'}")
