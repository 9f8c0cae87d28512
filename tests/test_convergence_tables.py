"""results/convergence/tables.py: which rows make each sweep and where a curve plateaus, on hand-made rows."""

from __future__ import annotations

import runpy
from pathlib import Path

import pandas as pd

TABLES = runpy.run_path(str(Path(__file__).resolve().parents[1] / "results" / "convergence" / "tables.py"))


def test_a_curve_plateaus_where_every_larger_budget_stays_within_the_tolerance_of_the_last():
    plateau = TABLES["plateau"]

    def curve(values):
        return pd.DataFrame({"steps": [10, 20, 50, 100, 200][:len(values)], "adv_auroc": values})

    assert plateau(curve([0.50, 0.30, 0.205, 0.20, 0.199]), "steps") == "50"  # 0.205 is within 0.01 of 0.199
    assert plateau(curve([0.50, 0.30, 0.25, 0.20, 0.10]), "steps") == "not reached"
    assert plateau(curve([0.40, 0.40]), "steps") == "10"
    assert plateau(curve([0.40]), "steps") == "n/a"


def test_each_sweep_reads_only_its_own_rows():
    rows = pd.DataFrame([
        dict(detector="d", defense="none", defense_randomized="", attack="pgd", steps=10, restarts=1, eot_samples=1,
             queries=None, adv_auroc=0.5, seed=0, norm="linf"),
        dict(detector="d", defense="none", defense_randomized="", attack="pgd", steps=10, restarts=3, eot_samples=1,
             queries=None, adv_auroc=0.4, seed=0, norm="linf"),
        dict(detector="d", defense="smoothing", defense_randomized="True", attack="pgd", steps=10, restarts=1,
             eot_samples=4, queries=None, adv_auroc=0.9, seed=0, norm="linf"),
        dict(detector="d", defense="smoothing", defense_randomized="True", attack="pgd", steps=10, restarts=1,
             eot_samples=16, queries=None, adv_auroc=0.8, seed=0, norm="linf"),
    ])
    sweeps = {sweep.name: sweep for sweep in TABLES["SWEEPS"]}
    steps = TABLES["curves"](rows, sweeps["PGD steps"])
    assert sorted(steps["adv_auroc"]) == [0.5, 0.8]  # restarts 1 only; behind smoothing the default EOT only
    eot = TABLES["curves"](rows, sweeps["PGD-10 EOT draws"])
    assert eot.set_index("eot_samples")["adv_auroc"].to_dict() == {4: 0.9, 16: 0.8}
    restarts = TABLES["curves"](rows, sweeps["PGD-10 restarts"])
    assert restarts[restarts["defense"] == "none"].set_index("restarts")["adv_auroc"].to_dict() == {1: 0.5, 3: 0.4}
