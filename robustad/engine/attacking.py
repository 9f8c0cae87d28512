"""The attack stage of one threat prefix (docs/protocol.md section 4): every attack on the same surrogate and eps.

The attacks of a threat prefix run together, batch by batch, so an attack that combines others (a worst case)
gets its members' results on the same batch without keeping every adversarial image of the eval set in memory.
The engine, not the attack, enforces the threat model: it evaluates the surrogate in the cell's chunks (gradients
then do not depend on the batch), counts zero input gradients, refuses outputs outside the cell's eps ball (L-inf
or L2), outside [0,1] or non-finite, optionally rounds to the 8-bit grid, keeps the clean image where a result
does not move the score the attack's way (``keep_clean``, every attack but a ``control``), and scores with the
unchanged detector: behind a randomized defense on reporting draws no attack has queried (``candidates``).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from robustad.components import Component
from robustad.contracts import AttackTarget, FlagTarget, Perturbed
from robustad.engine.candidates import BatchSelection, keep_clean
from robustad.engine.clean import CleanStage
from robustad.engine.defended import EOT_DRAWS, draw
from robustad.engine.factory import Factory
from robustad.engine.flagging import Flags, reads_images
from robustad.engine.guard import ComponentError, blame, require_finite
from robustad.engine.handles import Handle, check_settings
from robustad.engine.identity import image_seed
from robustad.engine.progress import Reporter
from robustad.errors import RobustadError, one_line
from robustad.kit.attacking import logit
from robustad.kit.threat import L2, LINF, distance, is_ball, parse_eps, round_to_8bit, two_logit
from robustad.records import Cell, DetectorOutput

if TYPE_CHECKING:
    from robustad.engine.fitted import Fitted

LogitModel = Callable[[torch.Tensor], torch.Tensor]

BALL_TOLERANCE = 1e-6  # absolute; for L2 radii, which may exceed 1, relative as well
NORM_NAMES = {LINF: "L-inf", L2: "L2"}


class ZeroGradients:
    """Counts gradient evaluations per image, and those whose input gradient is exactly zero (gradient masking)."""

    def __init__(self) -> None:
        self.total = 0
        self.zero = 0

    def observe(self, gradient: torch.Tensor) -> None:
        self.total += 1
        self.zero += int(not bool(gradient.detach().abs().amax() > 0))

    @property
    def share(self) -> float | None:
        return self.zero / self.total if self.total else None


class ChunkedLogits(torch.nn.Module):
    """The surrogate's two logits ``[-z/2, z/2]``, computed chunk by chunk (the cell's ``chunk`` images, cut from
    the start of the batch, which begins at a chunk boundary), counting zero input gradients per image.

    ``z_for(rows)`` is the surrogate's logit model of the batch rows ``rows`` (a slice): a white-box surrogate that
    holds the clean images' masks gets those of its chunk. An attack that asks for fewer images than the ``batch``
    it was given (a subset it still works on) gets ``z_for(None)``, the whole batch's model. Behind a randomized
    defense, z is the mean over ``eot`` draws (expectation over transformation, Athalye et al. 2018), so its
    gradient is the mean of the per-draw gradients; the draws are numbered apart from the ones the engine scores
    with.
    """

    def __init__(self, z_for: Callable[[slice | None], LogitModel], gradients: ZeroGradients, eot: int = 1,
                 chunk: int = 1, batch: int | None = None) -> None:
        super().__init__()
        self.z_for = z_for
        self.gradients = gradients
        self.eot = eot
        self.chunk = chunk
        self.batch = batch
        self._models: dict[tuple[int, int] | None, LogitModel] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = []
        for start in range(0, x.shape[0], self.chunk):
            rows = slice(start, min(start + self.chunk, x.shape[0]))
            images = x[rows]
            if images.requires_grad:
                images.register_hook(self._observe)
            z_model = self._model(rows if self.batch in (None, x.shape[0]) else None)
            if self.eot == 1:
                logits.append(z_model(images).reshape(-1))
                continue
            draws = []
            for number in range(self.eot):
                with draw(EOT_DRAWS + number):
                    draws.append(z_model(images).reshape(-1))
            logits.append(torch.stack(draws).mean(dim=0))
        return two_logit(torch.cat(logits))

    def _model(self, rows: slice | None) -> LogitModel:
        key = None if rows is None else (rows.start, rows.stop)
        if key not in self._models:
            self._models[key] = self.z_for(rows)
        return self._models[key]

    def _observe(self, gradient: torch.Tensor) -> None:
        for row in gradient:
            self.gradients.observe(row)


def same_model(z_model: LogitModel) -> Callable[[slice | None], LogitModel]:
    """``z_for`` of a logit model that is the same for every row (a linear head, a test's toy model)."""
    return lambda rows: z_model


@dataclass
class AttackOutcome:
    """One attack spec's results over the eval images, in eval order."""

    scores: np.ndarray
    distances: list[np.ndarray]
    settings: dict
    gradients: ZeroGradients
    seconds: float = 0.0
    failure: RobustadError | None = None
    kept: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    """(clean, adversarial) images of the eval indices the run keeps (``bench --save-examples``)."""
    flags: dict[str, np.ndarray] = field(default_factory=dict)
    """Values of each flag that reads images on the adversarial eval images, by flag spec."""


def attack_threat_group(cells: list[Cell], stage: CleanStage, surrogate: Fitted | None, factory: Factory,
                        batch_size: int, reporter: Reporter, flags: Flags, keep: frozenset[int] = frozenset()
                        ) -> dict[str, AttackOutcome]:
    """Run every attack (and member) of cells sharing a threat prefix, keyed by ``variant``; a failing attack (at
    build time, in ``describe``/``members`` or while it runs) fails alone, with the attacks that combine it. The
    clean and adversarial images of the eval indices in ``keep`` are kept in each outcome, and the cells' flags
    that read images are evaluated on every adversarial batch."""
    cell = cells[0]
    eps = parse_eps(cell.eps, cell.norm)
    n_eval = len(stage.split.eval)
    attacks, outcomes = _attacks(cells, factory, eps, n_eval)
    names = ", ".join(dict.fromkeys(attack.spec for attack in attacks.values()))
    reporter.stage(f"{cell.category}: {names} {cell.eps} via {cell.surrogate}", n_eval)
    defense = stage.backbone.defense
    with defense.attacked_with(cell.bpda) if defense is not None else contextlib.nullcontext():
        flag_cells = {c.flag: c for c in cells}  # each flag with a cell that records its options
        _attack_batches(cell, attacks, outcomes, stage, surrogate, eps, batch_size, reporter, keep, flags,
                        {spec: c for spec, c in flag_cells.items() if reads_images(flags.handle(c, spec))})
    return outcomes


def _attack_batches(cell: Cell, attacks: dict[str, _Built], outcomes: dict[str, AttackOutcome], stage: CleanStage,
                    surrogate: Fitted | None, eps: float, batch_size: int, reporter: Reporter,
                    keep: frozenset[int], flags: Flags, image_flags: dict[str, Cell]) -> None:
    """Every attack of the group on every eval batch, members before the attacks that combine them. With chunks of
    more than one image, each call gets one chunk: what an attack does with its batch (a subset it keeps working
    on) then depends on the chunk alone; with chunks of one, the whole batch, each image evaluated alone."""
    eval_labels = stage.eval_labels
    for indices, images, clean in stage.eval_batches(batch_size if cell.chunk == 1 else cell.chunk):
        images = images.to(stage.backbone.device)
        labels = torch.as_tensor(eval_labels[indices], dtype=torch.int64, device=images.device)
        z_for = None if surrogate is None else logit_models(surrogate, clean)
        z_model = None if z_for is None else z_for(None)
        results: dict[str, Perturbed] = {}
        selection = BatchSelection(stage, indices, images)
        for key, attack in attacks.items():
            outcome = outcomes[key]
            failed = [m for m in attack.members if outcomes[m].failure is not None]
            if failed and outcome.failure is None:
                outcome.failure = RobustadError(f"attack {attack.spec!r} has no result: its member "
                                                f"{failed[0].partition(chr(31))[0]!r} failed")
            if outcome.failure is not None:
                continue
            started = time.perf_counter()
            try:
                target = _target(attack, images, labels, eps, cell, indices, stage, z_model, z_for, outcome,
                                 {attacks[m].spec: selection.member(m, results[m])
                                  for m in attack.members if m in results}, flags)
                perturbed = attack.handle.call("perturb", target)
                results[key] = _checked(perturbed, images, eps, attack.handle.component, cell, stage)
                if cell.keep_clean and not attack.handle.optional("control"):
                    results[key] = keep_clean(key, results[key], eval_labels[indices], selection)
                for spec, flag_cell in image_flags.items():
                    values = outcome.flags.setdefault(spec, np.zeros(len(eval_labels)))
                    values[indices] = flags.adversarial(flag_cell, spec, indices, results[key].images)
            except RobustadError as error:
                outcome.failure = error
                continue
            outcome.scores[indices] = results[key].output.scores
            for row, index in enumerate(indices):
                outcome.distances[index] = np.asarray(results[key].output.patch_distances[row])
                if index in keep:
                    outcome.kept[index] = (images[row].cpu(), results[key].images[row].cpu())
            outcome.seconds += time.perf_counter() - started
        reporter.advance(len(indices))


def variant(spec: str, cell: Cell) -> str:
    """An attack as the engine tells attacks apart: its spec with the options the cell gives it (a grid may run
    ``pgd`` with 10 steps as a worst case's member beside ``pgd`` with 20)."""
    return f"{spec}\x1f{json.dumps(cell.component_options('attack', spec), sort_keys=True)}"


@dataclass
class _Built:
    """One attack variant of a threat group: its spec, guarded instance, members' variants, and a cell that uses it
    (whose options hold those of the flag it evades, if it is flag-aware)."""

    spec: str
    handle: Handle
    members: list[str]
    cell: Cell


def _attacks(cells: list[Cell], factory: Factory, eps: float,
             n_eval: int) -> tuple[dict[str, _Built], dict[str, AttackOutcome]]:
    """Every attack variant the cells need, members before the attacks that combine them, each built once, with
    an empty outcome each (or the outcome's one-line failure, when building it failed)."""
    attacks: dict[str, _Built] = {}
    outcomes: dict[str, AttackOutcome] = {}

    def add(spec: str, cell: Cell) -> str:
        key = variant(spec, cell)
        if key in outcomes:
            return key
        outcome = outcomes[key] = AttackOutcome(np.zeros(n_eval), [np.zeros(0)] * n_eval, {}, ZeroGradients())
        try:
            handle = factory.build(cell, "attack", spec)
            outcome.settings = check_settings(handle, handle.call("describe", eps))
            members = [add(member, cell) for member in handle.optional("members") or ()]
        except RobustadError as error:
            outcome.failure = error
            return key
        attacks[key] = _Built(spec, handle, members, cell)
        return key

    for cell in cells:
        add(cell.attack, cell)
    return attacks, outcomes


def _logit_model(surrogate: Fitted, clean: DetectorOutput) -> LogitModel:
    """The fitted surrogate's logit model for one batch (``surrogate`` is the runner's ``Fitted`` record)."""
    with blame(surrogate.component):
        return surrogate.instance.logit_model(clean)


def logit_models(surrogate: Fitted, clean: DetectorOutput) -> Callable[[slice | None], LogitModel]:
    """The fitted surrogate's logit model of some rows of one batch (None: all), from those rows' clean output."""

    def z_for(rows: slice | None) -> LogitModel:
        if rows is None:
            return _logit_model(surrogate, clean)
        masks = None if clean.masks is None else np.asarray(clean.masks)[rows]
        return _logit_model(surrogate, DetectorOutput(np.asarray(clean.scores)[rows],
                                                      np.asarray(clean.patch_distances)[rows], masks))

    return z_for


def _target(attack: _Built, images: torch.Tensor, labels: torch.Tensor, eps: float, cell: Cell,
            indices: list[int], stage: CleanStage, z_model: LogitModel | None,
            z_for: Callable[[slice | None], LogitModel] | None, outcome: AttackOutcome,
            results: dict[str, Perturbed], flags: Flags) -> AttackTarget:
    """The AttackTarget of one attack on one batch. Everything in it is the attack's own copy: an attack that
    writes into its images or its members' results cannot change another attack's row."""
    needs_surrogate = bool(attack.handle.optional("needs_surrogate"))
    seeds = [image_seed(cell.seed, f"{attack.spec}:{stage.names[stage.split.eval[i].path]}") for i in indices]

    def member(name: str) -> Perturbed:
        if name not in results:
            raise RobustadError(f"attack {attack.spec!r} asked for member {name!r}; its members are "
                                f"{', '.join(results) or 'none'}")
        found = results[name]
        output = DetectorOutput(np.array(found.output.scores), np.array(found.output.patch_distances),
                                None if found.output.masks is None else np.array(found.output.masks))
        return Perturbed(found.images.clone(), output)

    def score(x: torch.Tensor) -> torch.Tensor:  # behind a randomized defense, on the selection draws
        return torch.as_tensor(stage.select(x.detach().clone()).scores, device=x.device)

    use_model = needs_surrogate and z_model is not None
    defense = stage.backbone.defense
    exact = use_model and (defense is None or not defense.randomized)  # z gives the real score only then
    model = ChunkedLogits(z_for, outcome.gradients, cell.eot_samples, cell.chunk, len(indices)) if use_model else None
    score_from_logit = getattr(z_model, "score_of", None) if exact else None
    return AttackTarget(
        images=images.clone(), labels=labels.clone(), eps=eps, seeds=seeds, model=model, score=score,
        score_from_logit=score_from_logit, member=member,
        flag=_flag_target(attack, cell, indices, flags, model, score_from_logit), norm=cell.norm,
    )


def _flag_target(attack: _Built, cell: Cell, indices: list[int], flags: Flags, model: torch.nn.Module | None,
                 score_from_logit: Callable | None) -> FlagTarget | None:
    """The flag a flag-aware attack evades, differentiable through the surrogate's logit; such an attack needs a
    logit that gives the detector's real score (a white-box surrogate), so that its flag is the rows' flag."""
    spec = attack.handle.optional("flag_aware")
    if not spec:
        return None
    if model is None or score_from_logit is None:
        raise RobustadError(f"attack {attack.spec!r} option flag_aware={spec!r} needs a surrogate whose logit gives "
                            f"the detector's score (white-box, e.g. score); got {cell.surrogate!r}")

    def score(images: torch.Tensor) -> torch.Tensor:
        return score_from_logit(logit(model(images)))

    return flags.for_attack(attack.cell, spec, indices, score, attack.handle.optional("flag_posterior"))


def _checked(perturbed: Any, clean: torch.Tensor, eps: float, component: Component, cell: Cell,
             stage: CleanStage) -> Perturbed:
    """The attack's result inside the threat model of the cell (its ``norm`` ball of radius ``eps``, none for a
    corruption, and [0,1]), scored on the reporting draws. ``round_8bit`` is L-inf only (the request refuses it under
    L2), where rounding within the reach of eps keeps the ball."""
    images, output = (perturbed.images, perturbed.output) if isinstance(perturbed, Perturbed) else (perturbed, None)
    images = _plain_images(images, clean, component)
    require_finite(images, component, "adversarial images")
    outside = float(images.min()) < 0 or float(images.max()) > 1
    if not is_ball(cell.norm) and outside:  # a corruption has no ball, only the pixel range
        raise ComponentError(f"{component.label()} broke the threat model: pixels outside [0,1]")
    found = distance(images, clean, cell.norm) if is_ball(cell.norm) else 0.0
    tolerance = BALL_TOLERANCE * (1 + eps) if cell.norm == L2 else BALL_TOLERANCE
    if found > eps + tolerance or outside:
        raise ComponentError(f"{component.label()} broke the threat model: {NORM_NAMES[cell.norm]} distance "
                             f"{found:.6f} > eps {eps:.6f} or pixels outside [0,1]")
    if output is None and cell.round_8bit:
        images = round_to_8bit(images, clean, eps)
    scored = stage.score(images)
    defense = stage.backbone.defense
    randomized = defense is not None and defense.randomized  # a claim on selection draws is not the row's score
    if output is not None and not randomized and not _same_scores(output, scored):
        raise ComponentError(f"{component.label()} returned scores that are not the detector's scores of its "
                             "images; return the images alone and the engine scores them")
    return Perturbed(images, scored)


def _plain_images(images: Any, clean: torch.Tensor, component: Component) -> torch.Tensor:
    """The attack's images as a plain tensor like the clean ones (shape, dtype, device, layout), or a
    ``ComponentError`` naming the attack: meta tensors, another device or dtype, a tensor subclass or anything
    else the engine cannot read fails the attack's own cells, never the cells of the attacks beside it."""
    expected = f"expected {clean.dtype} images of shape {tuple(clean.shape)} on {clean.device}"
    if not isinstance(images, torch.Tensor):
        raise ComponentError(f"{component.label()} returned {type(images).__name__}; {expected}")
    try:
        images = images.detach().as_subclass(torch.Tensor)
        found = (tuple(images.shape), images.dtype, images.device, images.layout)
    except Exception as error:  # a hostile subclass can raise anything from its properties
        raise ComponentError(f"{component.label()} returned images robustad cannot read ({one_line(error)}); "
                             f"{expected}") from None
    if found != (tuple(clean.shape), clean.dtype, clean.device, torch.strided):
        shape, dtype, device, layout = found
        raise ComponentError(f"{component.label()} returned {dtype} images of shape {shape} on {device} "
                             f"({layout}); {expected}")
    return images


def _same_scores(claimed: DetectorOutput, scored: DetectorOutput) -> bool:
    """Whether an attack's own detector output is the detector's (built-ins hand over the output of the iterate
    they chose; the engine scores the images again and believes only its own scores)."""
    try:
        values = np.asarray(claimed.scores, dtype=np.float64).reshape(-1)
    except Exception:  # what an attack claims is not believed, whatever it is (a meta tensor, a string)
        return False
    return values.shape == scored.scores.shape and bool(np.allclose(values, scored.scores, rtol=1e-5, atol=1e-7))
