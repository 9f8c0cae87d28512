"""Turn the CLI's comma lists into validated, canonical cells: the one place where settings become a grid.

Everything that can be checked before computing is checked here, so a bad name, value or option is one line
before any work starts: components exist, options parse to their types (and pass the class's ``check_options``),
resolutions reach the backbones' patch sizes, attacks describe themselves with known keys, datasets and categories
are present and every cell's split can be made, and equal experiments are spelled alike (eps, shots, weights, data).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

from robustad.components import KINDS, Component, parse_spec
from robustad.contracts import FLAG_READS
from robustad.declaration import Request
from robustad.engine.adaptive import Adaptive, certified_sigma, check_reach, resolved_bpda, resolved_eot
from robustad.engine.grid import Threat, expand
from robustad.engine.guard import blame
from robustad.engine.handles import Handle, check_settings
from robustad.engine.identity import data_id, data_sha
from robustad.engine.settings import default_chunk
from robustad.engine.splits import MAX_SEED, canonical_shots, make_split, parse_shots, require_reference, split_sizes
from robustad.errors import RobustadError
from robustad.kit.threat import L2, LINF, MAX_L2_EPS, canonical_eps, is_ball, parse_eps
from robustad.kit.weights import weights_identity
from robustad.plugins import PluginRegistry
from robustad.records import NO_ATTACK, NO_DEFENSE, NOISE_CONTROL, CategoryData, Cell, Split
from robustad.results.leaderboard import check_one_line

MAX_RESOLUTION = 4096
MAX_MEMBER_DEPTH = 4


def with_noise_control(attacks: str | Sequence[str], norm: str = LINF) -> list[str]:
    """The attack list with the noise control first, unless it is there already, nothing is attacked or ``norm``
    is no ball (a corruption's severity is no noise size): every attack is read against random noise of the same
    size (docs/protocol.md section 4)."""
    specs = _items(attacks)
    if not specs or specs == [NO_ATTACK] or NOISE_CONTROL in {parse_spec(spec)[0] for spec in specs} \
            or not is_ball(norm):
        return specs
    return [NOISE_CONTROL, *specs]


def split_list(values: str | Sequence[str], what: str) -> list[str]:
    """``"a, b"`` (or ``["a", "b"]``) -> ``["a", "b"]`` without repeats; an empty list, or a value holding a line
    break, is an error naming the option."""
    items = list(dict.fromkeys(_items(values)))
    if not items:
        raise RobustadError(f"--{what} is empty; give at least one value")
    for item in items:
        check_one_line(item, f"--{what}")
    return items


def _items(values: str | Sequence[str]) -> list[str]:
    parts = values.split(",") if isinstance(values, str) else [str(v) for v in values] \
        if isinstance(values, (list, tuple)) else [str(values)]
    return [part.strip() for part in parts if part.strip()]


def _integers(text: str | Sequence[str], what: str, low: int, high: int | None = None) -> list[int]:
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


def parse_options(given: Sequence[str] | dict[str, Any], registry: PluginRegistry) -> dict[tuple[str, str], dict]:
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
        self.resolved: dict[tuple[str, str], dict] = {}  # a grid asks for each spec once per cell

    def component(self, kind: str, spec: str) -> Component:
        return self.registry.get(kind, parse_spec(spec)[0])

    def __call__(self, kind: str, spec: str) -> dict:
        if (kind, spec) not in self.resolved:  # what the cell records is what the cell gets: JSON's values
            self.resolved[(kind, spec)] = json.loads(json.dumps(self._options(kind, spec), default=str))
        return self.resolved[(kind, spec)]  # shared: callers read it, never change it

    def _options(self, kind: str, spec: str) -> dict[str, Any]:
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
        return options

    def changed(self, kind: str, spec: str) -> bool:
        """Whether ``--opt`` sets an option of this spec (by its name or by the exact spec)."""
        return (kind, parse_spec(spec)[0]) in self.given or (kind, spec) in self.given

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


SplitKey = tuple[str, str, str, int]  # dataset, category, shots, seed


@dataclass(frozen=True)
class Plan:
    """What a request computes: its canonical cells, each attack spec's Threat, every category's data and every
    cell's split, loaded and made once here, where they are checked (``sizes_only``: only the split sizes)."""

    cells: list[Cell]
    keys: list[str]  # the cells' keys, in order: each a hash of every field, computed once
    threats: dict[str, Threat]
    sizes: dict[SplitKey, tuple[int, int, int]]  # reference, calib and eval images
    data: dict[tuple[str, str], CategoryData]
    splits: dict[SplitKey, Split]

    def loaded(self, cell: Cell) -> tuple[CategoryData, Split] | None:
        """The cell's data and split, when this plan made them."""
        key = (cell.dataset, cell.category, cell.shots, cell.seed)
        return (self.data[key[:2]], self.splits[key]) if key in self.splits else None


def build_cells(request: Request, registry: PluginRegistry) -> list[Cell]:
    """Validate every name and value, then expand the cross product into canonical cells."""
    return plan(request, registry).cells


def plan(request: Request, registry: PluginRegistry, sizes_only: bool = False) -> Plan:
    """Validate every name and value, then expand the cross product into canonical cells. ``sizes_only`` (a dry
    run) counts each split's images instead of drawing them, and so leaves unchecked that calib and eval both
    hold normal and anomalous images."""
    given = parse_options(request.options, registry)
    resolve = _Resolver(registry, given)
    names = {
        "backbone": split_list(request.backbone, "backbone"),
        "detector": split_list(request.detector, "detector"),
        "calibrator": split_list(request.calib, "calib"),
        "surrogate": split_list(request.surrogate, "surrogate"),
    }
    for kind in ("backbone", "detector"):
        for spec in names[kind]:
            resolve.check(kind, spec)
    for spec in names["calibrator"]:
        resolve.create("calibrator", spec)  # cheap: a bad option fails now rather than mid-run
    resolutions = _integers(request.resolution, "resolution", 1, MAX_RESOLUTION)
    _check_patch_sizes(resolutions, names["backbone"], resolve)
    attack_specs = split_list(with_noise_control(request.attack, request.norm) if request.noise_control
                              else request.attack, "attack")
    norm = _norm(request)
    eps = list(dict.fromkeys(canonical_eps(value, norm) for value in split_list(request.eps, "eps")))
    attacks = _threats(attack_specs, eps, resolve, norm)
    if any(t.needs_surrogate for a, t in attacks.items() if a != NO_ATTACK):
        for spec in names["surrogate"]:
            surrogate = resolve.handle("surrogate", spec)  # cheap as well: fitted only when its cells run
            _check_flag_aware_surrogate(attacks, spec, surrogate)
    defenses = _defenses(request, resolve, resolutions)
    cert_radii = _cert_radii(request, defenses)
    names["flag"] = _flags(request, resolve)
    names["defense"] = [n for spec in defenses if spec != NO_DEFENSE for n in (spec, parse_spec(spec)[0])]
    shots = list(dict.fromkeys(canonical_shots(k) for k in split_list(request.shots, "shots")))
    for detector, k in product(names["detector"], shots):  # zero-shot (k = 0) only for detectors that can
        require_reference(parse_shots(k), resolve.component("detector", detector))
    seeds = _integers(request.seeds, "seeds", 0, MAX_SEED)
    made = Plan([], [], {}, {}, {}, {})
    datasets = _datasets(request, resolve, shots, seeds, made, sizes_only)
    _check_options_used(given, datasets, names, attacks)
    chunk = default_chunk(request.device) if request.chunk is None else request.chunk
    cells = expand(
        datasets=datasets, shots=shots, seeds=seeds, backbones=names["backbone"], resolutions=resolutions,
        detectors=names["detector"], surrogates=names["surrogate"], attacks=attacks, eps=eps,
        calibrators=names["calibrator"], resolve=resolve, defenses=defenses, flags=tuple(names["flag"]),
        cert_radii=cert_radii,
        fixed=dict(weights=weights_identity(request.weights), calib_fraction=request.calib_fraction,
                   precision=request.precision, round_8bit=request.round_8bit, chunk=chunk,
                   flag_fpr=request.flag_fpr, norm=norm, cert_alpha=request.cert_alpha, limit=request.limit,
                   keep_clean=request.keep_clean, radius=_radius_search(request, norm, attacks)),
    )
    unique = {cell.key: cell for cell in cells}  # pgd and pgd:10 are one experiment
    made.cells.extend(unique.values())
    made.keys.extend(unique)
    made.threats.update(attacks)
    return made


def _norm(request: Request) -> str:
    """``--norm``; ``--round-8bit`` is refused under L2, where rounding each pixel to the grid can leave the ball
    (docs/choices.md)."""
    norm = request.norm
    if norm == L2 and request.round_8bit:
        raise RobustadError("--round-8bit with --norm l2: rounding to the 8-bit grid can leave the L2 ball; "
                            "expected --norm linf, or no --round-8bit")
    return norm


def _radius_search(request: Request, norm: str, attacks: dict[str, Threat]) -> bool:
    """``--radius``: a search over the eps of a ball, through the surrogate's gradient, so it needs an L-inf or L2
    threat model and an attack that takes a surrogate."""
    if not request.radius:
        return False
    if not is_ball(norm):
        raise RobustadError(f"--radius with --norm {norm}: a radius is an eps of a ball; expected --norm linf or l2")
    if not any(threat.needs_surrogate for spec, threat in attacks.items() if spec != NO_ATTACK):
        raise RobustadError(f"--radius with --attack {','.join(attacks)}: the search ascends a surrogate's gradient; "
                            "expected an attack that takes one, e.g. pgd")
    return True


def _cert_radii(request: Request, defenses: dict[str, Adaptive]) -> tuple[str, ...]:
    """``--cert-radius`` as canonical L2 radii (none when empty); a radius needs a defense whose median scores can
    be certified (``certified_sigma``: ``smoothing``)."""
    if not _items(request.cert_radius):
        return ()
    radii = tuple(dict.fromkeys(_radius(value) for value in split_list(request.cert_radius, "cert-radius")))
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


def _defenses(request: Request, resolve: _Resolver, resolutions: list[int]) -> dict[str, Adaptive]:
    """Each defense spec with how gradient attacks meet it: BPDA through a non-differentiable one, EOT draws
    through a randomized one (each built once now, so a bad option is one line before any work). ``--bpda`` or
    ``--eot`` that no defense of the grid would use is a usage error, not silently ignored."""
    found: dict[str, Adaptive] = {}
    kinds: set[str] = set()
    for spec in split_list(request.defense, "defense"):
        if spec == NO_DEFENSE:
            found[spec] = Adaptive()
            continue
        defense = resolve.handle("defense", spec)
        check_reach(defense, resolutions)
        randomized = bool(defense.instance.randomized)
        kinds |= {"randomized"} if randomized else set()
        kinds |= set() if defense.instance.differentiable else {"non-differentiable"}
        found[spec] = Adaptive(bpda=resolved_bpda(request.bpda, bool(defense.instance.differentiable)),
                               eot_samples=resolved_eot(request.eot, randomized),
                               certified=certified_sigma(defense) is not None)
    _check_used(f"--bpda {request.bpda}", request.bpda != "auto", "non-differentiable", kinds, request, "jpeg")
    _check_used(f"--eot {request.eot}", request.eot is not None, "randomized", kinds, request, "gaussian")
    return found


def _check_used(given: str, set_by_user: bool, needs: str, kinds: set[str], request: Request, example: str) -> None:
    if set_by_user and needs not in kinds:
        raise RobustadError(f"{given} applies to a {needs} defense, and --defense {','.join(request.defense)} has "
                            f"none; expected one, e.g. --defense {example}, or leave the option out")


def _flags(request: Request, resolve: _Resolver) -> list[str]:
    """The flag specs, each built once (a bad name or option is one line now)."""
    specs = split_list(request.flag, "flag")
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
    posteriors: list[str] = []
    for member in _member_specs(attack):
        threat = _threat(member, eps, resolve, (*parents, spec), norm)
        flags.extend(threat.flags)
        posteriors.extend(threat.posteriors)
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
        posterior = str(attack.optional("flag_posterior"))
        resolve.create("calibrator", posterior)  # the posterior it evades through
        if resolve.changed("calibrator", posterior):  # recorded only then: other cells keep their keys
            posteriors.append(posterior)
        flags.append(aware)
    settings = check_settings(attack, attack.call("describe", parse_eps(eps[0], norm))) if eps else {}
    return Threat(needs_surrogate=bool(attack.optional("needs_surrogate")), members=tuple(members),
                  flags=tuple(dict.fromkeys(flags)), posteriors=tuple(dict.fromkeys(posteriors)),
                  settings=tuple(settings.items()))


def _check_flag_aware_surrogate(attacks: dict[str, Threat], spec: str, surrogate: Handle) -> None:
    """A flag-aware attack (or one with such a member) evades the rows' flag through the surrogate's logit, which
    must then give the detector's score (a white-box surrogate): refused now, not after the clean stage."""
    aware = [attack for attack, threat in attacks.items() if threat.flags and threat.needs_surrogate]
    if aware and not surrogate.optional("white_box"):
        raise RobustadError(f"attack {aware[0]!r} is flag-aware and needs a surrogate whose logit gives the "
                            f"detector's score (white-box, e.g. score); --surrogate {spec!r} is not one")


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


def _datasets(request: Request, resolve: _Resolver, shots: list[str], seeds: list[int], into: Plan,
              sizes_only: bool) -> dict[str, dict[str, tuple[str, str]]]:
    """Each dataset's wanted categories with the digest of their images (read now: a missing category, image or
    mask is one line before any work starts), and every cell's split made once, so that too few training images for
    k and the seed, or too few test images to calibrate, fail now too."""
    found: dict[str, dict[str, str]] = {}
    wanted = split_list(request.category, "category")
    for name in split_list(request.dataset, "dataset"):
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
                key = (name, category, k, seed)
                if sizes_only:
                    into.sizes[key] = split_sizes(data, parse_shots(k), seed, request.calib_fraction, request.limit)
                    continue
                split = into.splits[key] = make_split(data, parse_shots(k), seed, request.calib_fraction,
                                                       request.limit)
                into.sizes[key] = (len(split.reference), len(split.calib), len(split.eval))
            into.data[(name, category)] = data
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
    posteriors = {p for a, t in attacks.items() if a != NO_ATTACK for p in t.posteriors}
    names = {**names, "flag": sorted(flag_specs | {parse_spec(f)[0] for f in flag_specs}),
             "calibrator": sorted({*names["calibrator"], *posteriors, *(parse_spec(p)[0] for p in posteriors)})}
    in_use = {"dataset": set(datasets), **{kind: set(specs) for kind, specs in names.items()},
              "attack": attack_specs | {parse_spec(a)[0] for a in attack_specs}}
    if not any(t.needs_surrogate for a, t in attacks.items() if a != NO_ATTACK):
        in_use["surrogate"] = set()
    for kind, spec in given:
        if spec not in in_use.get(kind, set()):
            raise RobustadError(f"--opt names {kind} {spec!r}, which this run does not use; "
                                f"used: {', '.join(sorted(in_use.get(kind, ()))) or 'none'}")
