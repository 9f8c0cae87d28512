"""``robustad bench --dry-run``: what a request would compute, without computing (and without importing torch).

Every check of a real run before its first cell is made (names, options, data, splits), then the cells are listed
by model-prefix group with what the leaderboard already holds and the model passes each stage needs.
"""

from __future__ import annotations

import sys

from robustad.declaration import Request
from robustad.engine.grid import describe, group_by_model_prefix, group_by_threat_prefix
from robustad.engine.request import Plan, plan
from robustad.plugins import get_registry
from robustad.records import NO_ATTACK, Cell
from robustad.results.leaderboard import Leaderboard


def print_plan(request: Request) -> None:
    """The cells of ``request`` by group, each marked done or to do, and the passes the pending ones need."""
    found = plan(request, get_registry(), sizes_only=True)
    keys = {id(cell): key for cell, key in zip(found.cells, found.keys)}
    board = Leaderboard(request.out) if request.out.exists() else None
    done = set() if board is None else {keys[id(c)] for c in found.cells if board.holds(keys[id(c)], c.legacy_key)}
    groups = group_by_model_prefix(found.cells)
    lines: list[str] = []
    say = lines.append
    say(f"{len(found.cells)} cells in {len(groups)} groups -> {request.out}: {len(done)} already done, "
        f"{len(found.cells) - len(done)} to compute")
    totals = {"clean": [0, 0], "attack": [0, 0]}
    for number, group in enumerate(groups, 1):
        pending = [cell for cell in group if keys[id(cell)] not in done]
        say(f"group {number}: {len(group)} cells, {len(pending)} to compute")
        for cell in group:
            say(f"  {'done' if keys[id(cell)] in done else 'todo'}  {describe(cell, keys[id(cell)])}")
        if pending:
            for stage, (forward, backward) in passes(found, pending).items():
                totals[stage][0] += forward
                totals[stage][1] += backward
                say(f"  {stage} stage: {forward} forward, {backward} backward passes")
    say("model passes to compute: " + "; ".join(f"{stage} {f} forward, {b} backward"
                                                 for stage, (f, b) in totals.items()))
    sys.stdout.write("\n".join(lines) + "\n")


def passes(found: Plan, cells: list[Cell]) -> dict[str, tuple[int, int]]:
    """Model passes (forward, backward; one image each) of one group's pending cells: the clean stage scores the
    reference, calib and eval images once (each draw of a randomized defense apart), and each attack of each
    threat prefix attacks the eval images as its declared settings say (``Threat.passes``)."""
    first = cells[0]
    reference, calib, evaluation = found.sizes[(first.dataset, first.category, first.shots, first.seed)]
    draws = _draws(first)
    clean = (reference + calib + evaluation) * draws
    forward = backward = 0
    for threat_cells in group_by_threat_prefix(cells):
        for spec in _attacks(found, threat_cells):
            threat = found.threats[spec]
            f, b = threat.passes(threat_cells[0].eot_samples)
            forward += f * evaluation * draws
            backward += b * evaluation
    return {"clean": (clean, 0), "attack": (forward, backward)}


def _attacks(found: Plan, cells: list[Cell]) -> list[str]:
    """The attack specs one threat prefix runs, members once each."""
    specs: list[str] = []
    for cell in cells:
        spec = next(s for s in found.threats if s.split(":")[0] == cell.attack and s != NO_ATTACK)
        for member in (*found.threats[spec].members, spec):
            if member not in specs:
                specs.append(member)
    return specs


def _draws(cell: Cell) -> int:
    """How many times a randomized defense scores each image (its ``samples`` option; 1 without one)."""
    options = cell.component_options("defense", cell.defense)
    samples = options.get("samples", 1)
    return samples if isinstance(samples, int) and samples > 0 else 1
